//! `NAME.toml`, the manifest beside `NAME.wasm`: what the plugin is, the
//! sha256 of its wasm, what it is granted and its limits. Parsed strictly:
//! an unknown key is an error, not a silently ignored typo in a grant.

use std::time::Duration;

use serde::Deserialize;

use super::grants::{GrantError, Grants, Origin, SecretGrant};

/// Largest manifest read; anything bigger is not a manifest.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Most grants of each kind in one manifest.
pub const MAX_GRANTS: usize = 256;

/// The ceilings a manifest may ask for. The pooling allocator reserves
/// memory up to [`MAX_MEMORY_MIB`] per instance slot, so it is fixed here.
pub const MAX_MEMORY_MIB: u64 = 256;
/// Longest wall time a manifest may ask for.
pub const MAX_WALL_TIME_MS: u64 = 120_000;
/// Largest outbound response a manifest may ask for.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// Most outbound calls per call a manifest may ask for.
pub const MAX_OUTBOUND_CALLS: u32 = 1024;
/// Most log bytes per call a manifest may ask for.
pub const MAX_LOG_BYTES: u64 = 16 * 1024 * 1024;
/// Most refused or invalid host calls per call a manifest may ask for.
pub const MAX_REFUSALS: u32 = 1024;

/// What kind of plugin, and so which world it must implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// World `forge-adapter`.
    Forge,
    /// World `migrator`.
    Migrator,
}

impl Kind {
    /// The WIT world a plugin of this kind must implement.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Forge => "forge-adapter",
            Kind::Migrator => "migrator",
        }
    }

    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Forge => "forge",
            Kind::Migrator => "migrator",
        }
    }
}

/// Per-call limits, with safe defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, per instance.
    pub memory_bytes: u64,
    /// Wall time per call, host calls included.
    pub wall_time: Duration,
    /// Largest outbound response body.
    pub response_bytes: u64,
    /// Outbound requests per call (each redirect hop counts).
    pub outbound_calls: u32,
    /// Bytes through `log.emit`, and through each of stdout and stderr.
    pub log_bytes: u64,
    /// Refused (denied) or invalid host calls per call; the next one writes
    /// one summary row and stops the call.
    pub refusals: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            wall_time: Duration::from_secs(10),
            response_bytes: 4 << 20,
            outbound_calls: 32,
            log_bytes: 64 << 10,
            refusals: 16,
        }
    }
}

/// A parsed, validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Equals the file stem.
    pub name: String,
    /// Forge or migrator.
    pub kind: Kind,
    /// The plugin's own version (free text, shown to operators).
    pub version: String,
    /// For people.
    pub description: String,
    /// Lower-case hex sha256 of the wasm. Required for drop-in plugins;
    /// built-in ones are hashed at build time.
    pub sha256: Option<String>,
    /// What the plugin may touch.
    pub grants: Grants,
    /// Its limits.
    pub limits: Limits,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    /// Not TOML, a missing or unknown key, or a wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A field's value is out of range or malformed.
    #[error("{field}: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A grant is malformed.
    #[error(transparent)]
    Grant(#[from] GrantError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    kind: Kind,
    version: String,
    #[serde(default)]
    description: String,
    sha256: Option<String>,
    #[serde(default)]
    grants: RawGrants,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    /// Revealable.
    #[serde(default)]
    secrets: Vec<String>,
    /// Egress-only.
    #[serde(default, rename = "use")]
    uses: Vec<String>,
    #[serde(default)]
    origins: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<u64>,
    wall_time_ms: Option<u64>,
    response_bytes: Option<u64>,
    outbound_calls: Option<u32>,
    log_bytes: Option<u64>,
    refusals: Option<u32>,
}

fn field(field: &'static str, why: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field,
        why: why.into(),
    }
}

fn within<T: PartialOrd + fmt::Display + Copy>(
    name: &'static str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<Option<T>, ManifestError> {
    match value {
        Some(v) if v < min || v > max => {
            Err(field(name, format!("must be {min}..={max}, got {v}")))
        }
        other => Ok(other),
    }
}

use std::fmt;

/// Plugin names: what the file stem and the accessor `plugin:<name>` use.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

impl Manifest {
    /// Parses and validates manifest text. `stem` is the file's stem, which
    /// the `name` must equal (so a renamed file cannot borrow another
    /// plugin's identity).
    pub fn parse(text: &str, stem: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let raw: Raw = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines with a source excerpt; the
            // first line plus the location is enough for an operator.
            ManifestError::Syntax(e.to_string().trim().replace('\n', " "))
        })?;
        if !valid_name(&raw.name) {
            return Err(field(
                "name",
                "use 1-64 of a-z 0-9 - _, starting with a letter",
            ));
        }
        if raw.name != stem {
            return Err(field(
                "name",
                format!("{:?} does not match the file name {stem:?}", raw.name),
            ));
        }
        if raw.version.is_empty()
            || raw.version.len() > 64
            || raw.version.chars().any(char::is_control)
        {
            return Err(field("version", "use 1-64 printable characters"));
        }
        if raw.description.len() > 512 || raw.description.chars().any(char::is_control) {
            return Err(field("description", "use at most 512 printable characters"));
        }
        let sha256 = match raw.sha256 {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(h.to_ascii_lowercase())
            }
            Some(_) => return Err(field("sha256", "must be 64 hex digits")),
            None => None,
        };
        if raw.grants.secrets.len() > MAX_GRANTS
            || raw.grants.uses.len() > MAX_GRANTS
            || raw.grants.origins.len() > MAX_GRANTS
        {
            return Err(field(
                "grants",
                format!("at most {MAX_GRANTS} of each kind"),
            ));
        }
        let patterns = |list: &[String]| -> Result<Vec<SecretGrant>, GrantError> {
            list.iter().map(|s| SecretGrant::parse(s)).collect()
        };
        let grants = Grants {
            secrets: patterns(&raw.grants.secrets)?,
            uses: patterns(&raw.grants.uses)?,
            origins: raw
                .grants
                .origins
                .iter()
                .map(|o| Origin::parse(o))
                .collect::<Result<_, _>>()?,
        };
        let d = Limits::default();
        let l = raw.limits;
        let limits = Limits {
            memory_bytes: within("limits.memory_mib", l.memory_mib, 1, MAX_MEMORY_MIB)?
                .map_or(d.memory_bytes, |m| m << 20),
            wall_time: within("limits.wall_time_ms", l.wall_time_ms, 1, MAX_WALL_TIME_MS)?
                .map_or(d.wall_time, Duration::from_millis),
            response_bytes: within(
                "limits.response_bytes",
                l.response_bytes,
                1,
                MAX_RESPONSE_BYTES,
            )?
            .unwrap_or(d.response_bytes),
            outbound_calls: within(
                "limits.outbound_calls",
                l.outbound_calls,
                0,
                MAX_OUTBOUND_CALLS,
            )?
            .unwrap_or(d.outbound_calls),
            log_bytes: within("limits.log_bytes", l.log_bytes, 0, MAX_LOG_BYTES)?
                .unwrap_or(d.log_bytes),
            refusals: within("limits.refusals", l.refusals, 0, MAX_REFUSALS)?.unwrap_or(d.refusals),
        };
        Ok(Manifest {
            name: raw.name,
            kind: raw.kind,
            version: raw.version,
            description: raw.description,
            sha256,
            grants,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "forgejo"
kind = "forge"
version = "0.1.0"
sha256 = "AB00000000000000000000000000000000000000000000000000000000000000"
[grants]
secrets = ["plugin:forgejo/*"]
origins = ["https://codeberg.org"]
[limits]
memory_mib = 32
wall_time_ms = 500
"#;

    #[test]
    fn a_good_manifest_parses_with_defaults_for_missing_limits() {
        let m = Manifest::parse(GOOD, "forgejo").expect("valid");
        assert_eq!(m.kind, Kind::Forge);
        assert_eq!(m.sha256.as_deref().map(|h| &h[..2]), Some("ab"));
        assert_eq!(m.limits.memory_bytes, 32 << 20);
        assert_eq!(m.limits.wall_time, Duration::from_millis(500));
        assert_eq!(m.limits.outbound_calls, Limits::default().outbound_calls);
        assert_eq!(m.grants.origins.len(), 1);
    }

    #[test]
    fn hostile_manifests_are_refused_with_the_field_named() {
        let cases = [
            (GOOD.replace("forge\"", "shell\""), "kind"),
            (
                GOOD.replace("memory_mib = 32", "memory_mib = 100000"),
                "memory_mib",
            ),
            (
                GOOD.replace("memory_mib = 32", "memory_mib = -1"),
                "memory_mib",
            ),
            (
                GOOD.replace("wall_time_ms = 500", "wall_time_ms = 0"),
                "wall_time_ms",
            ),
            (GOOD.replace("AB00", "ZZ00"), "sha256"),
            (GOOD.replace("plugin:forgejo/*", "*"), "secret grant"),
            (
                GOOD.replace("[grants]", "[grants]\nuse = [\"a*b\"]"),
                "secret grant",
            ),
            (
                GOOD.replace("[limits]", "[limits]\nrefusals = 5000"),
                "limits.refusals",
            ),
            (
                GOOD.replace("https://codeberg.org", "http://codeberg.org"),
                "plain http",
            ),
            (
                GOOD.replace("[limits]", "[limits]\nfuel = 1"),
                "unknown field",
            ),
            (
                GOOD.replace("name = \"forgejo\"", "name = \"github\""),
                "file name",
            ),
            (GOOD.replace("name = \"forgejo\"", ""), "missing field"),
            (
                GOOD.replace("version = \"0.1.0\"", "version = \"\""),
                "version",
            ),
            ("name = [".to_owned(), ""),
            ("\u{0}\u{1}".to_owned(), ""),
            ("x".repeat(MAX_MANIFEST_BYTES + 1), "larger"),
        ];
        for (text, needle) in cases {
            let err = Manifest::parse(&text, "forgejo").expect_err("must be refused");
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        }
    }

    #[test]
    fn use_grants_are_egress_only() {
        let text = GOOD.replace("[grants]", "[grants]\nuse = [\"plugin:forgejo/token\"]");
        let m = Manifest::parse(&text, "forgejo").expect("valid");
        let token = crate::names::SecretRef::parse("plugin:forgejo/token").expect("ref");
        let other = crate::names::SecretRef::parse("plugin:other/token").expect("ref");
        // The reveal wildcard covers it too, so reveal wins; another scope
        // under `use` only is egress-only.
        assert_eq!(
            m.grants.secret(&token),
            Some(super::super::grants::Use::Reveal)
        );
        let text = GOOD
            .replace("secrets = [\"plugin:forgejo/*\"]", "secrets = []")
            .replace("[grants]", "[grants]\nuse = [\"plugin:other/*\"]");
        let m = Manifest::parse(&text, "forgejo").expect("valid");
        assert_eq!(
            m.grants.secret(&other),
            Some(super::super::grants::Use::Egress)
        );
        assert_eq!(m.grants.secret(&token), None);
    }

    #[test]
    fn names_are_file_safe() {
        for bad in ["", "A", "1x", "../x", "x/y", "x.y", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("forgejo") && valid_name("token-dir_2"));
    }
}
