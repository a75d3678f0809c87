//! Token policies: what a resolver token may do, beyond its role's rail.
//!
//! A policy names the capabilities a token has (one per kind of resolver
//! route), the references it may resolve (`scope/name` globs), the client
//! networks it may come from, and optionally the agent it is bound to,
//! whose resolution context the server then fixes whatever a request says.
//! It is stored with the token as JSON; a token without one has its role's
//! preset (a resolver: every capability, every reference — what resolver
//! tokens could always do).
//!
//! Matching is allocation-free and linear in the pattern and the text
//! (`*` is the only wildcard), because it runs for every reference of
//! every render.
//!
//! (Over 500 lines: parsing, checking and their unit tests — a quarter of
//! the file — are kept with the one type they are about.)

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::names::{Scope, SecretName};
use crate::resolve::Context;
use crate::runtime::addresses::Net;

mod spec;
pub use spec::PolicySpec;

/// Most patterns, and most networks, one policy may hold.
pub const MAX_RULES: usize = 64;
/// Longest pattern accepted.
const MAX_PATTERN_LEN: usize = 300;

/// One kind of resolver request.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `POST /render`.
    Render,
    /// getAgentToken (`POST /agent-types/{name}/token`).
    AgentToken,
    /// `POST /agent-types/{name}/dispatch`.
    Dispatch,
    /// Metadata: `GET /secrets`, `GET /agent-types…`.
    Metadata,
    /// `GET /secrets/{name}/access-log`.
    AccessLog,
    /// `GET /metrics`.
    Metrics,
}

impl Capability {
    /// Every capability, in a stable order.
    pub const ALL: [Capability; 6] = [
        Capability::Render,
        Capability::AgentToken,
        Capability::Dispatch,
        Capability::Metadata,
        Capability::AccessLog,
        Capability::Metrics,
    ];

    /// The name used in policies, flags and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Render => "render",
            Capability::AgentToken => "agent-token",
            Capability::Dispatch => "dispatch",
            Capability::Metadata => "metadata",
            Capability::AccessLog => "access-log",
            Capability::Metrics => "metrics",
        }
    }

    /// Parses a capability's name.
    pub fn parse(text: &str) -> Result<Capability, PolicyError> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| PolicyError::Capability(clip(text)))
    }
}

/// A reference pattern, `SCOPE/NAME`, where either part may hold `*` (any
/// run of characters, none included): `agent_type:coder/*`,
/// `global/GITHUB_*`, `instance:i-42/*`, `*/*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    scope: String,
    name: String,
}

impl Pattern {
    /// Parses `SCOPE/NAME`. Outside `*`, each part may hold only what a
    /// scope or a name may, so a pattern cannot smuggle anything else in.
    pub fn parse(text: &str) -> Result<Pattern, PolicyError> {
        let bad = |why: &str| PolicyError::Pattern(clip(text), why.to_owned());
        if text.len() > MAX_PATTERN_LEN {
            return Err(bad("too long"));
        }
        let (scope, name) = text
            .split_once('/')
            .ok_or_else(|| bad("write SCOPE/NAME, e.g. agent_type:coder/* or global/GITHUB_*"))?;
        let scope_ok =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-' | '*');
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*');
        if scope.is_empty() || !scope.chars().all(scope_ok) {
            return Err(bad(
                "the scope part may hold letters, digits, `:` `_` `.` `-` and `*`",
            ));
        }
        if name.is_empty() || !name.chars().all(name_ok) {
            return Err(bad(
                "the name part may hold letters, digits, `_` `.` `-` and `*`",
            ));
        }
        Ok(Pattern {
            scope: scope.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Whether `scope/name` matches.
    pub fn matches(&self, scope: &str, name: &str) -> bool {
        glob(self.scope.as_bytes(), scope.as_bytes()) && glob(self.name.as_bytes(), name.as_bytes())
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.scope, self.name)
    }
}

impl TryFrom<String> for Pattern {
    type Error = PolicyError;

    fn try_from(text: String) -> Result<Pattern, PolicyError> {
        Pattern::parse(&text)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.to_string()
    }
}

/// `*`-only glob matching in O(pattern × text) worst case without
/// allocating: the classic two-pointer walk that backtracks only to the
/// last `*`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// The agent a token is bound to: the server resolves its requests in this
/// context, whatever they say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBinding {
    /// The agent type.
    pub agent_type: String,
    /// The instance, if the token is for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl AgentBinding {
    /// The resolution context this binding fixes.
    pub fn context(&self) -> Context {
        Context {
            instance: self.instance.clone(),
            agent_type: Some(self.agent_type.clone()),
        }
    }
}

/// What a token may do. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The kinds of request it may make.
    pub capabilities: BTreeSet<Capability>,
    /// The references it may resolve (reveal, read metadata or history of):
    /// `NAME`, `SCOPE/NAME`, with `*` at the end of either part.
    #[schemars(with = "Vec<String>")]
    pub resolve: Vec<Pattern>,
    /// Client networks it may come from (empty: any), as `ADDRESS/BITS`.
    /// Parsed once, when the policy is read, not on every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "net_strings")]
    #[schemars(with = "Vec<String>")]
    pub networks: Vec<Net>,
    /// The agent it is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentBinding>,
}

impl Policy {
    /// The resolver role's preset: every capability, every reference, any
    /// network, no binding (what a resolver token has always been allowed).
    pub fn resolver() -> Policy {
        Policy {
            capabilities: Capability::ALL.into_iter().collect(),
            resolve: vec![Pattern {
                scope: "*".into(),
                name: "*".into(),
            }],
            networks: Vec::new(),
            agent: None,
        }
    }

    /// A policy for an agent: `capabilities`, bound to `agent_type` (and
    /// `instance`), resolving only along its own chain — its instance's
    /// scope, its agent type's, and `global` — unless `resolve` narrows it.
    pub fn for_agent(
        capabilities: BTreeSet<Capability>,
        agent_type: &str,
        instance: Option<&str>,
        resolve: Vec<Pattern>,
    ) -> Result<Policy, PolicyError> {
        let binding = AgentBinding {
            agent_type: agent_type.to_owned(),
            instance: instance.map(str::to_owned),
        };
        // Checked before the patterns below are built from them.
        Scope::scoped("agent_type", agent_type).map_err(|e| PolicyError::Agent(e.to_string()))?;
        if let Some(id) = instance {
            Scope::scoped("instance", id).map_err(|e| PolicyError::Agent(e.to_string()))?;
        }
        let resolve = if resolve.is_empty() {
            let mut own = vec![Pattern::parse(&format!("agent_type:{agent_type}/*"))?];
            if let Some(id) = instance {
                own.insert(0, Pattern::parse(&format!("instance:{id}/*"))?);
            }
            own.push(Pattern::parse("global/*")?);
            own
        } else {
            resolve
        };
        let policy = Policy {
            capabilities,
            resolve,
            networks: Vec::new(),
            agent: Some(binding),
        };
        policy.check()?;
        Ok(policy)
    }

    /// Checks the limits and that every network parses.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.resolve.len() > MAX_RULES || self.networks.len() > MAX_RULES {
            return Err(PolicyError::TooMany);
        }
        if let Some(binding) = &self.agent {
            // The binding becomes a resolution context: its names must be
            // valid scope ids.
            Scope::scoped("agent_type", &binding.agent_type)
                .map_err(|e| PolicyError::Agent(e.to_string()))?;
            if let Some(id) = &binding.instance {
                Scope::scoped("instance", id).map_err(|e| PolicyError::Agent(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Whether it may make requests of this kind.
    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The first pattern that lets it resolve `scope/name`, if any.
    pub fn rule_for(&self, scope: &Scope, name: &SecretName) -> Option<&Pattern> {
        self.resolve
            .iter()
            .find(|p| p.matches(scope.as_str(), name.as_str()))
    }

    /// Whether a request from `ip` is allowed (no networks: any).
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(ip))
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy always serialises")
    }

    /// Reads the stored form.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy =
            serde_json::from_str(text).map_err(|e| PolicyError::Stored(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }
}

impl crate::vault::Limit for Policy {
    fn allows(&self, scope: &Scope, name: &SecretName) -> bool {
        self.rule_for(scope, name).is_some()
    }

    fn why_not(&self) -> String {
        let rules: Vec<String> = self.resolve.iter().map(Pattern::to_string).collect();
        format!("not in the token's policy (resolve: {})", rules.join(", "))
    }
}

/// Networks as `ADDRESS/PREFIX` strings in the stored and HTTP forms; a
/// string that does not parse fails the whole policy.
mod net_strings {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::runtime::addresses::Net;

    pub fn serialize<S: Serializer>(nets: &[Net], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Net>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| {
                text.parse::<Net>()
                    .map_err(|problem| serde::de::Error::custom(PolicyError::Network(problem)))
            })
            .collect()
    }

    use super::PolicyError;
}

/// Why a policy is not valid. HTTP 400 wherever one is given.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not a capability.
    #[error("unknown capability {0:?}: use render, agent-token, dispatch, metadata, access-log or metrics")]
    Capability(String),
    /// A pattern that does not parse.
    #[error("invalid pattern {0:?}: {1}")]
    Pattern(String, String),
    /// A network that does not parse.
    #[error("invalid network: {0}")]
    Network(String),
    /// A bad agent binding.
    #[error("invalid agent binding: {0}")]
    Agent(String),
    /// A policy that says neither what it may resolve nor whom it is for.
    #[error(
        "a policy needs what it may resolve: a SCOPE/NAME pattern, or an agent type to bind it to"
    )]
    NothingToResolve,
    /// A policy that may make no kind of request at all.
    #[error("choose at least one capability: a token that may do nothing is of no use")]
    NoCapability,
    /// Over [`MAX_RULES`] patterns or networks.
    #[error("a policy holds at most {MAX_RULES} patterns and {MAX_RULES} networks")]
    TooMany,
    /// A stored policy that does not read back.
    #[error("the stored policy does not read: {0}")]
    Stored(String),
}

fn clip(text: &str) -> String {
    crate::text::clip(text, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).expect("scope")
    }

    fn name(s: &str) -> SecretName {
        SecretName::parse(s).expect("name")
    }

    #[test]
    fn globs() {
        for (p, t) in [
            ("*", ""),
            ("*", "anything"),
            ("GITHUB_*", "GITHUB_TOKEN"),
            ("GITHUB_*", "GITHUB_"),
            ("*_TOKEN", "FORGE_TOKEN"),
            ("a*b*c", "aXbYc"),
            ("a*b*c", "abc"),
            ("agent_type:*", "agent_type:coder"),
            ("exact", "exact"),
        ] {
            assert!(glob(p.as_bytes(), t.as_bytes()), "{p} ~ {t}");
        }
        for (p, t) in [
            ("GITHUB_*", "GITLAB_TOKEN"),
            ("a*b*c", "aXbY"),
            ("exact", "exactly"),
            ("exact", "exac"),
            ("agent_type:*", "instance:i-1"),
            ("", "x"),
        ] {
            assert!(!glob(p.as_bytes(), t.as_bytes()), "{p} !~ {t}");
        }
    }

    proptest! {
        /// The two-pointer walk agrees with plain exhaustive backtracking.
        #[test]
        fn glob_agrees_with_backtracking(p in "[ab*]{0,8}", t in "[ab]{0,12}") {
            prop_assert_eq!(glob(p.as_bytes(), t.as_bytes()), backtrack(p.as_bytes(), t.as_bytes()));
        }
    }

    /// The obvious exponential matcher, as the reference.
    fn backtrack(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| backtrack(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && backtrack(rest, &t[1..]),
        }
    }

    #[test]
    fn patterns_parse_and_refuse_hostile_text() {
        let p = Pattern::parse("agent_type:coder/*").expect("parses");
        assert!(p.matches("agent_type:coder", "FORGE_TOKEN"));
        assert!(!p.matches("agent_type:coderx", "FORGE_TOKEN"));
        assert!(!p.matches("agent_type:reviewer", "FORGE_TOKEN"));
        for bad in [
            "",
            "noslash",
            "/NAME",
            "global/",
            "global/a/b",
            "glo bal/x",
            "global/x\n",
            "global/${SECRET:x}",
            &format!("global/{}", "x".repeat(400)),
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn agent_policies_resolve_only_their_own_chain() {
        let caps = [Capability::Render].into_iter().collect();
        let p = Policy::for_agent(caps, "coder", Some("i-1"), Vec::new()).expect("policy");
        assert!(p.can(Capability::Render) && !p.can(Capability::Dispatch));
        assert!(p.rule_for(&scope("instance:i-1"), &name("X")).is_some());
        assert!(p.rule_for(&scope("agent_type:coder"), &name("X")).is_some());
        assert!(p.rule_for(&scope("global"), &name("X")).is_some());
        assert!(p.rule_for(&scope("instance:i-2"), &name("X")).is_none());
        assert!(p
            .rule_for(&scope("agent_type:reviewer"), &name("X"))
            .is_none());
        assert!(p
            .rule_for(&scope("operator_oauth:forgejo"), &name("X"))
            .is_none());
        assert_eq!(
            p.agent.as_ref().expect("bound").context().scopes(),
            Context {
                instance: Some("i-1".into()),
                agent_type: Some("coder".into())
            }
            .scopes()
        );
        assert!(Policy::for_agent(BTreeSet::new(), "bad name!", None, Vec::new()).is_err());
    }

    #[test]
    fn the_stored_form_round_trips_and_refuses_what_it_should() {
        let mut p = Policy::resolver();
        p.networks.push("10.0.0.0/8".parse().expect("net"));
        let back = Policy::from_json(&p.to_json()).expect("round trip");
        assert_eq!(back, p);
        assert!(back.admits("10.1.2.3".parse().expect("ip")));
        assert!(!back.admits("192.168.0.1".parse().expect("ip")));
        assert!(Policy::resolver().admits("192.168.0.1".parse().expect("ip")));
        for bad in [
            r#"{"capabilities":["render","root"],"resolve":[]}"#,
            r#"{"capabilities":[],"resolve":["nope"]}"#,
            r#"{"capabilities":[],"resolve":[],"networks":["10.0.0.0/33"]}"#,
            r#"{"capabilities":[],"resolve":[],"extra":1}"#,
            "[]",
        ] {
            assert!(Policy::from_json(bad).is_err(), "{bad}");
        }
        let many = Policy {
            resolve: vec![Pattern::parse("*/*").expect("p"); MAX_RULES + 1],
            ..Policy::resolver()
        };
        assert!(matches!(many.check(), Err(PolicyError::TooMany)));
        assert_eq!(
            Capability::parse("access-log").ok(),
            Some(Capability::AccessLog)
        );
        assert!(Capability::parse("everything").is_err());
    }
}
