//! What a run allows a migrator beyond its own legacy store: the scopes its
//! targets may lie in (`--option target_scopes=…`), whether it may mint
//! operator API keys (`--allow-operator-keys`), and which store references
//! it was offered to move. Every target and every rename of a run passes
//! through [`Allowance`]: a plugin's word is never enough to move, create or
//! delete outside what the operator started (ARCHITECTURE.md, invariant 5).

use std::collections::BTreeSet;

use super::MigrateError;
use crate::names::{Scope, SecretRef};

/// The option naming the scopes a run may write into.
pub const TARGET_SCOPES_OPTION: &str = "target_scopes";

/// The scope kind of plugins' own secrets: never a migration target, so a
/// migrator cannot plant a value that another plugin's grant reaches.
const PLUGIN_KIND: &str = "plugin";

/// One entry of `target_scopes`: a scope, or every scope of a kind.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ScopePattern {
    /// Exactly this scope (`global`, `workload:web`).
    Exact(String),
    /// Every scope `<kind>:…` (`workload:*`).
    Kind(String),
}

impl ScopePattern {
    fn parse(text: &str) -> Result<ScopePattern, MigrateError> {
        let text = text.trim();
        let bad = |why: &str| {
            MigrateError::Invalid(format!(
                "option {TARGET_SCOPES_OPTION}: {:?} {why} (use a comma list of scopes or \
                 KIND:*, e.g. workload:*,registry:*,global)",
                super::clip(text)
            ))
        };
        if let Some(kind) = text.strip_suffix(":*") {
            // A kind is checked with a stand-in id.
            Scope::scoped(kind, "x").map_err(|_| bad("is no scope kind"))?;
            if kind == PLUGIN_KIND {
                return Err(bad("is a plugin's own scope, never a migration target"));
            }
            return Ok(ScopePattern::Kind(kind.to_owned()));
        }
        let scope = Scope::parse(text).map_err(|_| bad("is no scope"))?;
        if kind_of(&scope) == Some(PLUGIN_KIND) {
            return Err(bad("is a plugin's own scope, never a migration target"));
        }
        Ok(ScopePattern::Exact(scope.as_str().to_owned()))
    }

    fn covers(&self, scope: &Scope) -> bool {
        match self {
            ScopePattern::Exact(s) => s == scope.as_str(),
            ScopePattern::Kind(k) => kind_of(scope) == Some(k.as_str()),
        }
    }
}

/// The kind of `scope` (`None` for `global`).
fn kind_of(scope: &Scope) -> Option<&str> {
    scope.as_str().split_once(':').map(|(kind, _)| kind)
}

/// What one run allows; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct Allowance {
    /// `None`: the operator named no target scopes.
    target_scopes: Option<Vec<ScopePattern>>,
    /// The operator opted in to operator API keys.
    pub operator_keys: bool,
}

impl Allowance {
    /// The allowance of a run with `options` (`target_scopes` read from
    /// them; the last one wins, as for the plugin) and the operator-key
    /// opt-in.
    pub fn new(options: &[(String, String)], operator_keys: bool) -> Result<Self, MigrateError> {
        let target_scopes = options
            .iter()
            .rev()
            .find(|(k, _)| k == TARGET_SCOPES_OPTION)
            .map(|(_, v)| {
                v.split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(ScopePattern::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Allowance {
            target_scopes,
            operator_keys,
        })
    }

    /// Whether a secret may be written at `target` (a discovered item's):
    /// never in a plugin's scope; within `target_scopes` if the operator
    /// gave them.
    pub fn check_target(&self, target: &SecretRef) -> Result<(), String> {
        let scope = target.scope.clone().unwrap_or_else(Scope::global);
        if kind_of(&scope) == Some(PLUGIN_KIND) {
            return Err(format!(
                "target {} is in a plugin's own scope; a migrator never writes there",
                shown(target)
            ));
        }
        match &self.target_scopes {
            Some(patterns) if !patterns.iter().any(|p| p.covers(&scope)) => Err(format!(
                "target {} is outside the scopes this run allows ({TARGET_SCOPES_OPTION}={})",
                shown(target),
                self.shown_scopes()
            )),
            _ => Ok(()),
        }
    }

    /// Checks one `(old, new)` pair of `plan-renames` and returns the old
    /// reference (scope made explicit) to read and later delete. `old` must
    /// be one of `offered`; `old` and `new` must be two secrets; `new` must
    /// lie in a scope the run names in `target_scopes` (a move deletes the
    /// old secret, so it needs the operator's explicit word on where to).
    pub fn check_rename(
        &self,
        offered: &BTreeSet<String>,
        old: &str,
        new: &str,
    ) -> Result<SecretRef, String> {
        let old_ref = SecretRef::parse(old)
            .map(explicit)
            .map_err(|e| format!("invalid rename source: {e}"))?;
        let new_ref = SecretRef::parse(new)
            .map(explicit)
            .map_err(|e| format!("invalid target: {e}"))?;
        if !offered.contains(&shown(&old_ref)) {
            return Err(format!(
                "{} was not offered to the plugin; a migrator moves only what the host lists",
                shown(&old_ref)
            ));
        }
        if old_ref == new_ref {
            return Err(format!(
                "{} would be moved onto itself (and then deleted)",
                shown(&old_ref)
            ));
        }
        self.check_target(&new_ref)?;
        if self.target_scopes.is_none() {
            return Err(format!(
                "no target scopes for in-store moves: give --option {TARGET_SCOPES_OPTION}=SCOPE,… \
                 (e.g. {TARGET_SCOPES_OPTION}={}) to allow moving into {}",
                suggest(&new_ref),
                new_ref.scope.as_ref().map_or("global", Scope::as_str)
            ));
        }
        Ok(old_ref)
    }

    fn shown_scopes(&self) -> String {
        self.target_scopes
            .iter()
            .flatten()
            .map(|p| match p {
                ScopePattern::Exact(s) => s.clone(),
                ScopePattern::Kind(k) => format!("{k}:*"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `NAME` and `global/NAME` are one secret: the scope made explicit.
pub fn explicit(r: SecretRef) -> SecretRef {
    SecretRef {
        scope: Some(r.scope.unwrap_or_else(Scope::global)),
        name: r.name,
    }
}

/// `SCOPE/NAME` of an explicit reference.
fn shown(r: &SecretRef) -> String {
    format!(
        "{}/{}",
        r.scope.as_ref().map_or("global", Scope::as_str),
        r.name.as_str()
    )
}

/// The pattern an operator would most likely give for `target`.
fn suggest(target: &SecretRef) -> String {
    match target.scope.as_ref().and_then(kind_of) {
        Some(kind) => format!("{kind}:*"),
        None => "global".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> SecretRef {
        SecretRef::parse(text).expect("reference")
    }

    fn allow(scopes: &str) -> Allowance {
        Allowance::new(&[(TARGET_SCOPES_OPTION.into(), scopes.into())], false).expect("valid")
    }

    #[test]
    fn plugin_scopes_are_never_targets() {
        assert!(
            Allowance::new(&[(TARGET_SCOPES_OPTION.into(), "plugin:*".into())], false).is_err()
        );
        assert!(Allowance::new(
            &[(TARGET_SCOPES_OPTION.into(), "plugin:github".into())],
            false
        )
        .is_err());
        assert!(Allowance::default()
            .check_target(&r("plugin:github/client-secret"))
            .is_err());
        assert!(allow("workload:*")
            .check_target(&r("plugin:github/x"))
            .is_err());
    }

    #[test]
    fn targets_must_lie_in_the_named_scopes() {
        let a = allow("workload:*, registry:docker,global");
        assert!(a.check_target(&r("workload:web/X")).is_ok());
        assert!(a.check_target(&r("registry:docker/X")).is_ok());
        assert!(a.check_target(&r("registry:quay/X")).is_err());
        assert!(a.check_target(&r("X")).is_ok());
        assert!(a.check_target(&r("agent_type:coder/X")).is_err());
        assert!(Allowance::default()
            .check_target(&r("agent_type:coder/X"))
            .is_ok());
    }

    #[test]
    fn renames_move_only_what_was_offered_and_never_onto_itself() {
        let offered: BTreeSet<String> = ["global/A".to_owned()].into();
        let a = allow("workload:*");
        assert_eq!(
            a.check_rename(&offered, "A", "workload:w/A").expect("fine"),
            r("global/A")
        );
        assert!(a
            .check_rename(&offered, "global/B", "workload:w/B")
            .is_err());
        assert!(a
            .check_rename(&offered, "agent_type:x/A", "workload:w/A")
            .is_err());
        assert!(allow("global")
            .check_rename(&offered, "A", "global/A")
            .is_err());
        assert!(a.check_rename(&offered, "A", "global/B").is_err());
        let none = Allowance::default()
            .check_rename(&offered, "A", "workload:w/A")
            .expect_err("no target scopes");
        assert!(none.contains("target_scopes=workload:*"), "{none}");
    }
}
