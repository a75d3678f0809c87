//! A policy as an operator writes it — the CLI's `--can`, `--resolve`,
//! `--network`, `--agent-type` and `--instance` flags, or the dashboard's
//! form fields — turned into a [`Policy`] by one set of rules, so both
//! front ends mean the same thing by the same words.

use std::collections::BTreeSet;

use super::{Capability, Pattern, Policy, PolicyError, MAX_RULES};

/// The words of a policy, before they are checked.
#[derive(Clone, Debug, Default)]
pub struct PolicySpec {
    /// Capability names; none: the defaults (render and metadata, and for
    /// a token bound to an agent agent-token and dispatch as well).
    pub can: Option<Vec<String>>,
    /// `SCOPE/NAME` patterns it may resolve; none with an agent binding:
    /// the agent's own chain.
    pub resolve: Vec<String>,
    /// Client networks (`ADDRESS/PREFIX`); none: any.
    pub networks: Vec<String>,
    /// The agent type to bind it to.
    pub agent_type: Option<String>,
    /// The instance of that agent type to bind it to.
    pub instance: Option<String>,
}

impl PolicySpec {
    /// Whether nothing is said, so the token gets its role's preset.
    pub fn is_empty(&self) -> bool {
        self.can.is_none()
            && self.resolve.is_empty()
            && self.networks.is_empty()
            && self.agent_type.is_none()
            && self.instance.is_none()
    }

    /// The policy these words describe; none when they say nothing.
    pub fn build(&self) -> Result<Option<Policy>, PolicyError> {
        if self.is_empty() {
            return Ok(None);
        }
        // Counted before anything is parsed, so an oversized list costs
        // nothing but its length.
        if self.resolve.len() > MAX_RULES || self.networks.len() > MAX_RULES {
            return Err(PolicyError::TooMany);
        }
        if self.instance.is_some() && self.agent_type.is_none() {
            return Err(PolicyError::Agent(
                "an instance binding needs its agent type".into(),
            ));
        }
        let capabilities: BTreeSet<Capability> = match &self.can {
            None => {
                let mut caps = vec![Capability::Render, Capability::Metadata];
                if self.agent_type.is_some() {
                    caps.extend([Capability::AgentToken, Capability::Dispatch]);
                }
                caps.into_iter().collect()
            }
            Some(names) if names.is_empty() => return Err(PolicyError::NoCapability),
            Some(names) => names
                .iter()
                .map(|c| Capability::parse(c.trim()))
                .collect::<Result<_, _>>()?,
        };
        let resolve = self
            .resolve
            .iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut policy = match &self.agent_type {
            Some(agent_type) => {
                Policy::for_agent(capabilities, agent_type, self.instance.as_deref(), resolve)?
            }
            None if resolve.is_empty() => return Err(PolicyError::NothingToResolve),
            None => Policy {
                capabilities,
                resolve,
                networks: Vec::new(),
                agent: None,
            },
        };
        policy.networks = self
            .networks
            .iter()
            .map(|n| {
                n.trim()
                    .parse::<crate::runtime::addresses::Net>()
                    .map_err(PolicyError::Network)
            })
            .collect::<Result<_, _>>()?;
        policy.check()?;
        Ok(Some(policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn nothing_said_is_the_preset() {
        assert_eq!(PolicySpec::default().build().expect("ok"), None);
    }

    #[test]
    fn defaults_depend_on_the_binding() {
        let narrow = PolicySpec {
            resolve: words(&["global/GITHUB_*"]),
            ..Default::default()
        };
        let p = narrow.build().expect("ok").expect("a policy");
        assert!(p.can(Capability::Render) && p.can(Capability::Metadata));
        assert!(!p.can(Capability::AgentToken) && p.agent.is_none());
        let bound = PolicySpec {
            agent_type: Some("coder".into()),
            instance: Some("i-1".into()),
            networks: words(&["10.0.0.0/8"]),
            ..Default::default()
        };
        let p = bound.build().expect("ok").expect("a policy");
        assert!(p.can(Capability::AgentToken) && p.can(Capability::Dispatch));
        assert_eq!(p.resolve.len(), 3, "the agent's own chain");
        assert_eq!(
            p.networks,
            vec!["10.0.0.0/8"
                .parse::<crate::runtime::addresses::Net>()
                .expect("net")]
        );
        let only = PolicySpec {
            can: Some(words(&["render"])),
            agent_type: Some("coder".into()),
            ..Default::default()
        };
        let p = only.build().expect("ok").expect("a policy");
        assert_eq!(p.capabilities.len(), 1);
    }

    #[test]
    fn bad_words_are_refused() {
        let cases = [
            PolicySpec {
                can: Some(words(&["render"])),
                ..Default::default()
            },
            PolicySpec {
                can: Some(Vec::new()),
                resolve: words(&["*/*"]),
                ..Default::default()
            },
            PolicySpec {
                can: Some(words(&["root"])),
                resolve: words(&["*/*"]),
                ..Default::default()
            },
            PolicySpec {
                resolve: words(&["no-slash"]),
                ..Default::default()
            },
            PolicySpec {
                resolve: words(&["*/*"]),
                networks: words(&["10.0.0.0/99"]),
                ..Default::default()
            },
            PolicySpec {
                instance: Some("i-1".into()),
                resolve: words(&["*/*"]),
                ..Default::default()
            },
            PolicySpec {
                agent_type: Some("bad name".into()),
                ..Default::default()
            },
            PolicySpec {
                resolve: vec!["*/*".into(); MAX_RULES + 1],
                ..Default::default()
            },
        ];
        for spec in cases {
            assert!(spec.build().is_err(), "{spec:?}");
        }
    }
}
