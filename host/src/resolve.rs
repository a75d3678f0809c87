//! Scope resolution: which scopes a bare name is looked up in, and in which
//! order, given the caller's context.

use crate::names::{NameError, Scope};

/// The caller's context: which instance and agent type it acts for.
/// A bare name resolves instance → agent_type → global.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// `instance:<id>` is searched first.
    pub instance: Option<String>,
    /// `agent_type:<id>` is searched next.
    pub agent_type: Option<String>,
}

/// Why a context was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// A key other than `instance` or `agent_type`.
    #[error("unknown context key {0:?}: use instance=ID or agent_type=ID")]
    UnknownKey(String),
    /// Not `key=value`.
    #[error("context must be key=value, got {0:?}")]
    NotPair(String),
    /// The same key twice.
    #[error("context key {0:?} given twice")]
    Duplicate(String),
    /// The id breaks the scope grammar.
    #[error(transparent)]
    Id(#[from] NameError),
}

impl Context {
    /// Builds a context from `key=value` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, ContextError> {
        let mut ctx = Context::default();
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| ContextError::NotPair(pair.chars().take(80).collect()))?;
            ctx.set(key, value)?;
        }
        Ok(ctx)
    }

    /// Sets one key, checking the id against the scope grammar.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ContextError> {
        let slot = match key {
            "instance" => &mut self.instance,
            "agent_type" => &mut self.agent_type,
            other => return Err(ContextError::UnknownKey(other.chars().take(40).collect())),
        };
        if slot.is_some() {
            return Err(ContextError::Duplicate(key.to_owned()));
        }
        Scope::scoped(key, value)?;
        *slot = Some(value.to_owned());
        Ok(())
    }

    /// The scopes a bare name is searched in, most specific first.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes = Vec::with_capacity(3);
        for (kind, id) in [
            ("instance", &self.instance),
            ("agent_type", &self.agent_type),
        ] {
            if let Some(scope) = id.as_deref().and_then(|id| Scope::scoped(kind, id).ok()) {
                scopes.push(scope);
            }
        }
        scopes.push(Scope::global());
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_instance_agent_type_global() {
        let ctx = Context::from_pairs(["agent_type=coder", "instance=i-42"]).expect("valid");
        let scopes: Vec<String> = ctx.scopes().iter().map(|s| s.to_string()).collect();
        assert_eq!(scopes, ["instance:i-42", "agent_type:coder", "global"]);
        assert_eq!(Context::default().scopes(), vec![Scope::global()]);
    }

    #[test]
    fn hostile_pairs_are_refused() {
        assert!(matches!(
            Context::from_pairs(["x=1"]),
            Err(ContextError::UnknownKey(_))
        ));
        assert!(matches!(
            Context::from_pairs(["instance"]),
            Err(ContextError::NotPair(_))
        ));
        assert!(matches!(
            Context::from_pairs(["instance=a", "instance=b"]),
            Err(ContextError::Duplicate(_))
        ));
        assert!(matches!(
            Context::from_pairs(["instance=a/b"]),
            Err(ContextError::Id(_))
        ));
        assert!(matches!(
            Context::from_pairs(["instance="]),
            Err(ContextError::Id(_))
        ));
    }
}
