//! The create-token form of `/settings/tokens`: its fields, what they mean
//! (a role, a lifetime and, for a resolver, a policy in the words the CLI
//! takes, [`PolicySpec`]), and the form sent back filled in with what was
//! typed when it is refused.

use maud::{html, Markup};

use super::{csrf_field, Fields};
use crate::auth::policy::{Capability, PolicySpec};
use crate::auth::{AuthError, Grant, Role, Session};
use crate::http::error::ApiError;

/// Longest a field may be. The policy fields hold at most 64 lines of at
/// most 300 characters; anything far past that is not a mistake worth
/// sending back into the page.
const MAX_FIELD: usize = 32 << 10;

/// What the form holds: a fresh one, or the one just sent.
pub struct Draft {
    name: String,
    role: String,
    ttl_days: String,
    agent_type: String,
    instance: String,
    can: Vec<String>,
    resolve: String,
    networks: String,
}

impl Draft {
    /// A fresh form: a resolver that may only render, for 90 days, bound
    /// to `agent_type` (and `instance`) when the agent's page sent here.
    pub fn fresh(agent_type: Option<&str>, instance: Option<&str>) -> Draft {
        Draft {
            name: String::new(),
            role: "resolver".into(),
            ttl_days: "90".into(),
            agent_type: agent_type.unwrap_or_default().to_owned(),
            instance: instance.unwrap_or_default().to_owned(),
            // Narrow by default: what is needed must be ticked.
            can: vec![Capability::Render.as_str().to_owned()],
            resolve: String::new(),
            networks: String::new(),
        }
    }

    /// The form as sent. A field over [`MAX_FIELD`] is dropped (and
    /// refused by [`Draft::grant`]), so the page never echoes it.
    pub fn sent(fields: &Fields) -> (Draft, Option<&'static str>) {
        let mut too_long = None;
        let mut take = |key: &'static str| {
            let text = fields.one(key).unwrap_or_default();
            if text.len() > MAX_FIELD {
                too_long.get_or_insert(key);
                return String::new();
            }
            text.to_owned()
        };
        let draft = Draft {
            name: take("name"),
            role: take("role"),
            ttl_days: take("ttl_days"),
            agent_type: take("agent_type"),
            instance: take("instance"),
            resolve: take("resolve"),
            networks: take("networks"),
            // An unknown name is refused by the policy's check, by name
            // (clipped).
            can: fields.all("can").take(16).map(str::to_owned).collect(),
        };
        // Six boxes: more than 16 ticks is not this form.
        if fields.all("can").nth(16).is_some() {
            too_long.get_or_insert("can");
        }
        (draft, too_long)
    }

    /// The name typed.
    pub fn name(&self) -> &str {
        self.name.trim()
    }

    /// The role and the grant the form asks for, checked: the lifetime,
    /// and for a resolver the policy — with its agent type one of
    /// `agent_types`. An operator token takes no policy.
    pub fn grant(&self, agent_types: &[String]) -> Result<(Role, Grant), ApiError> {
        let role = Role::parse(&self.role)?;
        let ttl = days(self.ttl_days.trim())?;
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let spec = PolicySpec {
            // Boxes, not a free list: none ticked means none, never the
            // CLI's defaults.
            can: Some(self.can.clone()),
            resolve: lines(&self.resolve),
            networks: lines(&self.networks),
            agent_type: nonempty(&self.agent_type),
            instance: nonempty(&self.instance),
        };
        if role == Role::Operator {
            // The capability boxes come ticked; the rest is a choice.
            let policy_given = !spec.resolve.is_empty()
                || !spec.networks.is_empty()
                || spec.agent_type.is_some()
                || spec.instance.is_some();
            if policy_given {
                return Err(AuthError::BadPolicy(
                    "only resolver tokens take a policy (an operator token may do everything): \
                     choose resolver, or clear the agent binding, patterns and networks"
                        .into(),
                )
                .into());
            }
            return Ok((role, Grant { ttl, policy: None }));
        }
        if let Some(agent_type) = &spec.agent_type {
            if !agent_types.contains(agent_type) {
                return Err(ApiError::Invalid(format!(
                    "no agent type {:?}: add it on the Agent types page first",
                    agent_type.chars().take(64).collect::<String>()
                )));
            }
        }
        let policy = spec
            .build()
            .map_err(|e| AuthError::BadPolicy(e.to_string()))?;
        Ok((role, Grant { ttl, policy }))
    }

    /// The form, filled in with this draft; `agent_types` for the binding.
    pub fn form(&self, session: &Session, agent_types: &[String]) -> Markup {
        let checked = |role: &str| self.role == role;
        let ttl = |days: &str| self.ttl_days.trim() == days;
        html! {
            section aria-labelledby="new-token" {
                h2 id="new-token" { "Create a token" }
                form method="post" action="/settings/tokens" class="stack" {
                    (csrf_field(session))
                    label for="token-name" { "Name" }
                    input id="token-name" name="name" required maxlength="64" autocomplete="off" value=(self.name);
                    fieldset {
                        legend { "Role" }
                        label { input type="radio" name="role" value="resolver" checked[checked("resolver") || !checked("operator")]; " resolver — what its policy below allows" }
                        label { input type="radio" name="role" value="operator" checked[checked("operator")]; " operator — every change (takes no policy)" }
                    }
                    label for="token-ttl" { "Expires" }
                    select id="token-ttl" name="ttl_days" {
                        option value="1" selected[ttl("1")] { "after 1 day" }
                        option value="7" selected[ttl("7")] { "after 7 days" }
                        option value="30" selected[ttl("30")] { "after 30 days" }
                        option value="90" selected[ttl("90")] { "after 90 days" }
                        option value="365" selected[ttl("365")] { "after 1 year" }
                        option value="" selected[ttl("")] { "never" }
                    }
                    fieldset aria-describedby="policy-help" {
                        legend { "Policy (resolver tokens)" }
                        p id="policy-help" class="help" {
                            "A resolver token may do only what is ticked, resolve only what its patterns match, "
                            "and come only from its networks."
                        }
                        label for="token-agent" { "Bound to agent type" }
                        select id="token-agent" name="agent_type" aria-describedby="agent-help" {
                            option value="" selected[self.agent_type.is_empty()] { "not bound" }
                            @for name in agent_types {
                                option value=(name) selected[&self.agent_type == name] { (name) }
                            }
                            // A binding from a link to a type that is gone
                            // is shown, so the refusal is about something
                            // visible.
                            @if !self.agent_type.is_empty() && !agent_types.contains(&self.agent_type) {
                                option value=(self.agent_type) selected { (self.agent_type) " (unknown)" }
                            }
                        }
                        label for="token-instance" { "Instance (optional)" }
                        input id="token-instance" name="instance" maxlength="128" autocomplete="off" spellcheck="false"
                            value=(self.instance) aria-describedby="agent-help";
                        p id="agent-help" class="help" {
                            "Bound, the server resolves as " code { "instance → agent_type → global" }
                            " for this agent whatever a request says, and serves only its forge token."
                        }
                        fieldset {
                            legend { "May" }
                            @for cap in Capability::ALL {
                                label {
                                    input type="checkbox" name="can" value=(cap.as_str())
                                        checked[self.can.iter().any(|c| c == cap.as_str())];
                                    " " (cap.as_str()) " — " (what(cap))
                                }
                            }
                        }
                        label for="token-resolve" { "May resolve (one SCOPE/NAME pattern a line)" }
                        textarea id="token-resolve" name="resolve" rows="3" spellcheck="false" autocomplete="off"
                            aria-describedby="resolve-help" { (self.resolve) }
                        p id="resolve-help" class="help" {
                            code { "*" } " matches anything, e.g. " code { "agent_type:coder/*" } ", "
                            code { "global/GITHUB_*" } ". Bound to an agent and left empty: its own chain."
                        }
                        label for="token-networks" { "From networks (one CIDR a line)" }
                        textarea id="token-networks" name="networks" rows="2" spellcheck="false" autocomplete="off"
                            aria-describedby="networks-help" { (self.networks) }
                        p id="networks-help" class="help" { "e.g. " code { "10.0.0.0/8" } "; empty: any network." }
                    }
                    button type="submit" { "Create token" }
                }
            }
        }
    }
}

/// What a capability lets a token do, for the form.
fn what(cap: Capability) -> &'static str {
    match cap {
        Capability::Render => "render templates",
        Capability::AgentToken => "read its agent's forge token",
        Capability::Dispatch => "make forge calls as its agent",
        Capability::Metadata => "list secrets and agent types",
        Capability::AccessLog => "read access logs",
        Capability::Metrics => "read metrics",
    }
}

/// A text area's lines, trimmed, blank ones left out.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A form's day count: empty is none; anything else must be a whole number.
fn days(text: &str) -> Result<Option<std::time::Duration>, AuthError> {
    if text.is_empty() {
        return Ok(None);
    }
    let days: u64 = text.parse().map_err(|_| AuthError::BadTtl)?;
    Ok(Some(std::time::Duration::from_secs(
        days.checked_mul(86_400).ok_or(AuthError::BadTtl)?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_form_means_what_the_cli_means() {
        let types = vec!["coder".to_owned()];
        let (draft, long) = Draft::sent(&fields(&[
            ("name", "bot"),
            ("role", "resolver"),
            ("ttl_days", "7"),
            ("agent_type", "coder"),
            ("instance", " i-1 "),
            ("can", "render"),
            ("can", "agent-token"),
            ("networks", "10.0.0.0/8\r\n\r\n 192.168.0.0/16 "),
        ]));
        assert!(long.is_none());
        let (role, grant) = draft.grant(&types).expect("valid");
        assert_eq!(role, Role::Resolver);
        assert_eq!(grant.ttl, Some(std::time::Duration::from_secs(7 * 86_400)));
        let policy = grant.policy.expect("a policy");
        assert_eq!(policy.capabilities.len(), 2);
        assert_eq!(
            policy
                .networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.0.0.0/8", "192.168.0.0/16"]
        );
        let agent = policy.agent.expect("bound");
        assert_eq!(
            (agent.agent_type.as_str(), agent.instance.as_deref()),
            ("coder", Some("i-1"))
        );
    }

    #[test]
    fn refusals() {
        let types = vec!["coder".to_owned()];
        for pairs in [
            vec![("role", "resolver"), ("can", "render")],
            vec![("role", "resolver"), ("resolve", "*/*")],
            vec![("role", "resolver"), ("can", "render"), ("resolve", "x")],
            vec![("role", "resolver"), ("can", "root"), ("resolve", "*/*")],
            vec![
                ("role", "resolver"),
                ("can", "render"),
                ("agent_type", "ghost"),
            ],
            vec![
                ("role", "resolver"),
                ("can", "render"),
                ("resolve", "*/*"),
                ("networks", "10.0.0.0/33"),
            ],
            vec![
                ("role", "operator"),
                ("can", "render"),
                ("agent_type", "coder"),
            ],
            vec![("role", "operator"), ("networks", "10.0.0.0/8")],
            vec![("role", "admin")],
            vec![("role", "resolver"), ("ttl_days", "-1")],
        ] {
            let (draft, _) = Draft::sent(&fields(&pairs));
            assert!(draft.grant(&types).is_err(), "{pairs:?}");
        }
        let (draft, _) = Draft::sent(&fields(&[("role", "operator"), ("can", "render")]));
        let (role, grant) = draft.grant(&types).expect("the ticked boxes do not count");
        assert!(role == Role::Operator && grant.policy.is_none());
        let huge = "x".repeat(MAX_FIELD + 1);
        let (draft, long) = Draft::sent(&fields(&[("resolve", &huge)]));
        assert_eq!(long, Some("resolve"));
        assert!(draft.resolve.is_empty());
        let ticks = vec![("can", "render"); 17];
        assert_eq!(Draft::sent(&fields(&ticks)).1, Some("can"));
        assert_eq!(Draft::sent(&fields(&ticks[..16])).1, None);
    }
}
