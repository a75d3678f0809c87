//! Migrator for account credentials files (ADR-026).
//!
//! Every `*.credentials.json` directly in the source folder, or in one of
//! its direct subfolders, is read (names starting with `.` are skipped,
//! which is also how retired files stay out of sight). The account is the
//! file's `"account"` field, else the file name before `.credentials.json`.
//!
//! | field | target | binding |
//! |---|---|---|
//! | `api_key` | `account:<acct>/API_KEY` | none |
//! | `access_token`, `oauth.access_token` | `account:<acct>/ACCESS_TOKEN` | none |
//! | `refresh_token`, `oauth.refresh_token` | `account:<acct>/REFRESH_TOKEN` | none |
//! | `client_api_keys[]` `{name, key, role}` with `"project"` (or `"train"`) | `<project>.<name>` | `api-key({name: "<project>.<name>", role})` |
//!
//! `expires_at` (Unix seconds, or an RFC 3339 string) and `scopes` (a list,
//! or one space- or comma-separated string), top level or in `oauth`, go
//! into the descriptions, never into a secret. A client key's role is
//! `resolver` unless it says `operator`.
//!
//! Item ids are `<relative file>#<field>` (`alice.credentials.json#access_token`,
//! `alice.credentials.json#oauth/refresh_token`,
//! `train.credentials.json#client_api_keys/ci`); the unit is the relative
//! file, so all fields of a file retire together: the file is renamed to
//! `.<file name>.migrated.bak` beside it. Because of that, a file with any
//! field that cannot be migrated is migrated not at all (every field is a
//! problem) until it is fixed: retiring it would hide the broken field.

use std::collections::BTreeSet;
use std::path::Path;

use keyward_plugin_sdk::migrate::{
    self, problem, quoted, ApiKey, Binding, Discovery, Item, MigratorInfo, Problem, RunConfig,
};
use keyward_plugin_sdk::{wire, Error, Migrator};
use serde_json::{Map, Value};

/// What a credentials file's name ends with.
const SUFFIX: &str = ".credentials.json";

/// Largest credentials file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Longest API token name the host accepts.
const MAX_TOKEN_NAME: usize = 64;

/// Most scopes quoted in a description, and the longest one.
const MAX_SCOPES: usize = 32;
const MAX_SCOPE_LEN: usize = 64;

/// The roles a client key may become.
const ROLES: [&str; 2] = ["resolver", "operator"];

struct AccountCredentials;

impl Migrator for AccountCredentials {
    fn info() -> MigratorInfo {
        MigratorInfo {
            name: "account-credentials".into(),
            description: "account credentials files (*.credentials.json): API keys and OAuth \
                          tokens as account:<account>/…, client API keys as API tokens"
                .into(),
        }
    }

    fn discover(run: &RunConfig) -> Result<Discovery, Error> {
        let source = migrate::source_dir(run)?;
        discover_in(&source)
    }

    fn read(run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        let (file, field) = id
            .rsplit_once('#')
            .ok_or_else(|| format!("{id}: not an id of this migrator (FILE#FIELD)"))?;
        let doc = load(&source, file)?;
        let value = extract(&doc, field).map_err(|e| format!("{id}: {e}"))?;
        check_value(value)
            .map(|v| v.as_bytes().to_vec())
            .map_err(|e| format!("{id}: {e}"))
    }

    fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        let path = credentials_path(&source, unit)?;
        migrate::retire_file(&path, unit)
    }
}

keyward_plugin_sdk::export_migrator!(AccountCredentials);

/// The path of the credentials file `relative`, refusing anything else.
fn credentials_path(source: &Path, relative: &str) -> Result<std::path::PathBuf, String> {
    if !is_credentials_name(relative.rsplit('/').next().unwrap_or(relative)) {
        return Err(format!("{relative}: not a *{SUFFIX} file"));
    }
    migrate::inside(source, relative)
}

/// Reads and parses the credentials file `relative`.
fn load(source: &Path, relative: &str) -> Result<Value, String> {
    let path = credentials_path(source, relative)?;
    let bytes = migrate::read_file(&path, relative, MAX_FILE_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{relative}: not JSON ({e})"))
}

fn is_credentials_name(name: &str) -> bool {
    !name.starts_with('.') && name.len() > SUFFIX.len() && name.ends_with(SUFFIX)
}

/// Discovery in the folder `source`.
fn discover_in(source: &Path) -> Result<Discovery, Error> {
    let (files, mut problems) = credential_files(source)?;
    let mut items = Vec::new();
    // Files that cannot be migrated whole: their good fields wait too.
    let mut blocked = BTreeSet::new();
    for rel in files {
        let parsed = load(source, &rel).map(|doc| {
            let name = rel.rsplit('/').next().unwrap_or(&rel);
            parse(&rel, &name[..name.len() - SUFFIX.len()], &doc)
        });
        match parsed {
            Ok((mut found, mut bad)) => {
                if !bad.is_empty() {
                    blocked.insert(rel.clone());
                }
                items.append(&mut found);
                problems.append(&mut bad);
            }
            Err(reason) => problems.push(problem(&rel, reason)),
        }
    }
    let (items, mut clashing) = migrate::refuse_duplicate_targets(items);
    for p in &clashing {
        if let Some((unit, _)) = p.id.rsplit_once('#') {
            blocked.insert(unit.to_owned());
        }
    }
    problems.append(&mut clashing);
    let mut kept = Vec::new();
    for item in items {
        if blocked.contains(&item.unit) {
            problems.push(problem(
                &item.id,
                format!(
                    "not migrated: another field of {} cannot be, and a file is retired as a \
                     whole; fix it and run again",
                    item.unit
                ),
            ));
        } else {
            kept.push(item);
        }
    }
    Ok(Discovery {
        items: kept,
        problems,
    })
}

/// The credentials files of `source` and of its direct subfolders, as
/// sorted relative paths, and problems with folders that cannot be listed.
fn credential_files(source: &Path) -> Result<(Vec<String>, Vec<Problem>), Error> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let top = list(source)
        .map_err(|e| Error::Invalid(format!("the source folder cannot be listed: {e}")))?;
    for (name, is_dir) in top {
        if is_dir {
            match list(&source.join(&name)) {
                Ok(inner) => files.extend(
                    inner
                        .into_iter()
                        .filter(|(n, dir)| !dir && is_credentials_name(n))
                        .map(|(n, _)| format!("{name}/{n}")),
                ),
                Err(e) => problems.push(problem(&name, format!("{name}: cannot be listed: {e}"))),
            }
        } else if is_credentials_name(&name) {
            files.push(name);
        }
    }
    Ok((files, problems))
}

/// The entries of a folder as (UTF-8 name, is a real folder), sorted,
/// without dotfiles. Symlinks are never folders here, so nothing outside
/// the source is listed. Names that are not UTF-8 cannot be ids: skipped.
fn list(dir: &Path) -> Result<Vec<(String, bool)>, std::io::Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((name, is_dir));
    }
    out.sort();
    Ok(out)
}

/// The items of one parsed credentials file `rel` (whose name before the
/// suffix is `stem`), and the problems of its fields. Any problem means the
/// caller withholds the whole file.
fn parse(rel: &str, stem: &str, doc: &Value) -> (Vec<Item>, Vec<Problem>) {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let Value::Object(top) = doc else {
        problems.push(problem(rel, format!("{rel}: not a JSON object")));
        return (items, problems);
    };
    let mut bad = |field: &str, reason: String| {
        problems.push(problem(&format!("{rel}#{field}"), reason));
    };

    // Account fields: (field path, secret name, kind, meta).
    let oauth = match top.get("oauth") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => {
            bad("oauth", "oauth is not an object".into());
            None
        }
    };
    let top_meta = Meta::of(top);
    let oauth_meta = oauth.map(Meta::of);
    let mut account_fields: Vec<(String, &'static str, &'static str, Option<&Meta>)> = Vec::new();
    for (field, name, kind) in [
        ("api_key", "API_KEY", "API key"),
        ("access_token", "ACCESS_TOKEN", "OAuth access token"),
        ("refresh_token", "REFRESH_TOKEN", "OAuth refresh token"),
    ] {
        match present(top, field) {
            Ok(false) => {}
            Ok(true) => account_fields.push((
                field.to_owned(),
                name,
                kind,
                (field != "api_key").then_some(&top_meta),
            )),
            Err(e) => bad(field, e),
        }
    }
    if let Some(o) = oauth {
        for (field, name, kind) in [
            ("access_token", "ACCESS_TOKEN", "OAuth access token"),
            ("refresh_token", "REFRESH_TOKEN", "OAuth refresh token"),
        ] {
            match present(o, field) {
                Ok(false) => {}
                Ok(true) => {
                    account_fields.push((format!("oauth/{field}"), name, kind, oauth_meta.as_ref()))
                }
                Err(e) => bad(&format!("oauth/{field}"), e),
            }
        }
    }
    if !account_fields.is_empty() {
        let account = match top.get("account") {
            None | Some(Value::Null) => Ok(stem),
            Some(Value::String(a)) => Ok(a.as_str()),
            Some(_) => Err("account is not a string".to_owned()),
        }
        .and_then(|a| {
            if migrate::valid_name(a) {
                Ok(a)
            } else {
                Err(format!(
                    "account {} cannot be a scope id: use 1-128 of A-Z a-z 0-9 _ . - starting \
                     with a letter or digit (or set \"account\")",
                    quoted(a)
                ))
            }
        });
        match account {
            Ok(account) => {
                for (field, name, kind, meta) in account_fields {
                    let value = extract(doc, &field).and_then(check_value);
                    match value {
                        Ok(_) => items.push(Item {
                            id: format!("{rel}#{field}"),
                            target: format!("account:{account}/{name}"),
                            description: describe(kind, account, meta, name == "ACCESS_TOKEN"),
                            binding: Binding::None,
                            unit: rel.to_owned(),
                        }),
                        Err(e) => bad(&field, format!("{field}: {e}")),
                    }
                }
            }
            Err(e) => bad("account", e),
        }
    }

    // Client API keys.
    match top.get("client_api_keys") {
        None | Some(Value::Null) => {}
        Some(Value::Array(keys)) if keys.is_empty() => {}
        Some(Value::Array(keys)) => match project(top) {
            Ok(project) => {
                for (i, key) in keys.iter().enumerate() {
                    match client_key(project, key) {
                        Ok((name, role)) => items.push(Item {
                            id: format!("{rel}#client_api_keys/{name}"),
                            target: format!("{project}.{name}"),
                            description: format!(
                                "client API key {name} of project {project} (role {role})"
                            ),
                            binding: Binding::ApiKey(ApiKey {
                                name: format!("{project}.{name}"),
                                role: role.to_owned(),
                            }),
                            unit: rel.to_owned(),
                        }),
                        Err(e) => bad(&format!("client_api_keys/{}", key_label(key, i)), e),
                    }
                }
            }
            Err(e) => bad("project", e),
        },
        Some(_) => bad("client_api_keys", "client_api_keys is not a list".into()),
    }

    if items.is_empty() && problems.is_empty() {
        problems.push(problem(
            rel,
            format!(
                "{rel}: no api_key, access_token, refresh_token, oauth or client_api_keys field"
            ),
        ));
    }
    let (items, mut clashing) = migrate::refuse_duplicate_targets(items);
    problems.append(&mut clashing);
    (items, problems)
}

/// Whether `field` of `object` holds something to migrate (`null` and
/// absent do not); something other than a string is a problem.
fn present(object: &Map<String, Value>, field: &str) -> Result<bool, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(_)) => Ok(true),
        Some(_) => Err(format!("{field} is not a string")),
    }
}

/// The project of the client keys: `"project"`, else `"train"`.
fn project(top: &Map<String, Value>) -> Result<&str, String> {
    let get = |f: &str| match top.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("{f} is not a string")),
    };
    let project = match (get("project")?, get("train")?) {
        (Some(p), Some(t)) if p != t => {
            return Err("project and train differ: which one do the client keys belong to?".into())
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => {
            return Err(
                "client_api_keys need a \"project\" (or \"train\") to be named after".into(),
            )
        }
    };
    if !migrate::valid_name(project) || project.len() >= MAX_TOKEN_NAME {
        return Err(format!(
            "project {} cannot start a token name: use A-Z a-z 0-9 _ . - starting with a letter \
             or digit",
            quoted(project)
        ));
    }
    Ok(project)
}

/// A client key's `(name, role)`, checked (its key too).
fn client_key<'a>(project: &str, key: &'a Value) -> Result<(&'a str, &'a str), String> {
    let Value::Object(fields) = key else {
        return Err("a client key that is not an object".into());
    };
    let name = match fields.get("name") {
        Some(Value::String(n)) => n.as_str(),
        Some(_) => return Err("name is not a string".into()),
        None => return Err("a client key without a name".into()),
    };
    if !migrate::valid_name(name) || project.len() + 1 + name.len() > MAX_TOKEN_NAME {
        return Err(format!(
            "client key name {} does not make a token name {project}.…: use A-Z a-z 0-9 _ . - \
             starting with a letter or digit, at most {MAX_TOKEN_NAME} in all",
            quoted(name)
        ));
    }
    let role = match fields.get("role") {
        None | Some(Value::Null) => "resolver",
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
        Some(r) => {
            return Err(format!(
                "role {} is neither resolver nor operator",
                quoted(r.as_str().unwrap_or("(not a string)"))
            ))
        }
    };
    match fields.get("key") {
        Some(v) => check_value(v).map_err(|e| format!("key: {e}"))?,
        None => return Err("a client key without a key".into()),
    };
    Ok((name, role))
}

/// How a bad client key is named in its problem's id.
fn key_label(key: &Value, index: usize) -> String {
    match key.get("name").and_then(Value::as_str) {
        Some(n) if migrate::valid_name(n) => n.to_owned(),
        _ => format!("[{index}]"),
    }
}

/// The value at `field` (an id's part after `#`) of a parsed file.
fn extract<'a>(doc: &'a Value, field: &str) -> Result<&'a Value, String> {
    let missing = || format!("no {field} in the file (any more)");
    match field.split_once('/') {
        None if matches!(field, "api_key" | "access_token" | "refresh_token") => {
            doc.get(field).ok_or_else(missing)
        }
        Some(("oauth", f)) if matches!(f, "access_token" | "refresh_token") => {
            doc.get("oauth").and_then(|o| o.get(f)).ok_or_else(missing)
        }
        Some(("client_api_keys", name)) => {
            let mut keys = doc
                .get("client_api_keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|k| k.get("name").and_then(Value::as_str) == Some(name));
            match (keys.next(), keys.next()) {
                (Some(k), None) => k.get("key").ok_or_else(missing),
                (None, _) => Err(missing()),
                (Some(_), Some(_)) => Err(format!("more than one client key named {name}")),
            }
        }
        _ => Err(format!("{field:?} is not a field this migrator reads")),
    }
}

/// A value to migrate: a non-empty string of at most 64 KiB without
/// control characters. The reasons never quote it.
fn check_value(value: &Value) -> Result<&str, String> {
    let Value::String(text) = value else {
        return Err("not a string".into());
    };
    if text.is_empty() {
        return Err("empty".into());
    }
    if text.len() > migrate::MAX_VALUE {
        return Err(format!(
            "{} bytes, more than the {} a secret may hold",
            text.len(),
            migrate::MAX_VALUE
        ));
    }
    if text.chars().any(char::is_control) {
        return Err("holds control characters".into());
    }
    Ok(text)
}

/// What a token's description says besides its kind: expiry and scopes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Meta {
    expires: Option<String>,
    scopes: Vec<String>,
}

impl Meta {
    fn of(object: &Map<String, Value>) -> Meta {
        Meta {
            expires: object.get("expires_at").and_then(expiry),
            scopes: object.get("scopes").map(scopes).unwrap_or_default(),
        }
    }
}

/// `<kind> of <account>[; expires <time>][; scopes <a b>]` (the expiry only
/// for an access token: it is the access token's).
fn describe(kind: &str, account: &str, meta: Option<&Meta>, with_expiry: bool) -> String {
    let mut text = format!("{kind} of {account}");
    if let Some(meta) = meta {
        if let Some(expires) = meta.expires.as_ref().filter(|_| with_expiry) {
            text.push_str(&format!("; expires {expires}"));
        }
        if !meta.scopes.is_empty() {
            text.push_str(&format!("; scopes {}", meta.scopes.join(" ")));
        }
    }
    text
}

/// `expires_at` as RFC 3339 UTC (`2027-01-01T00:00:00Z`): Unix seconds (a
/// number, or digits in a string) or an RFC 3339 time (fractions dropped).
/// Anything else says nothing.
fn expiry(value: &Value) -> Option<String> {
    let seconds = match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?,
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()?
        }
        Value::String(s) => {
            let s = s.trim();
            // Drop a fraction of a second, which wire::parse_datetime does not take.
            let text = match s.get(19..) {
                Some(rest) if rest.starts_with('.') => {
                    let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                    format!("{}{}", &s[..19], &rest[1 + digits..])
                }
                _ => s.to_owned(),
            };
            wire::parse_datetime(&text)?
        }
        _ => return None,
    };
    rfc3339(seconds)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, for years 1970..=9999.
fn rfc3339(seconds: i64) -> Option<String> {
    if !(0..=253_402_300_799).contains(&seconds) {
        return None;
    }
    let (days, rem) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// `scopes` as a list: a JSON list of strings, or one string split on
/// spaces and commas. Scopes that are not plain printable words are left
/// out, and so is everything past a few dozen.
fn scopes(value: &Value) -> Vec<String> {
    let all: Vec<String> = match value {
        Value::String(s) => wire::split_scopes(s),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .flat_map(wire::split_scopes)
            .collect(),
        _ => Vec::new(),
    };
    all.into_iter()
        .filter(|s| s.len() <= MAX_SCOPE_LEN && s.chars().all(|c| c.is_ascii_graphic()))
        .take(MAX_SCOPES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_plugin_sdk::testing::TempDir;

    fn parse_text(rel: &str, json: &str) -> (Vec<Item>, Vec<Problem>) {
        let stem = &rel[..rel.len() - SUFFIX.len()];
        parse(rel, stem, &serde_json::from_str(json).expect("test JSON"))
    }

    fn ids(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    fn problem_ids(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn account_fields_map_to_account_secrets() {
        let (items, problems) = parse_text(
            "alice.credentials.json",
            r#"{"api_key":"k1","access_token":"a1","refresh_token":"r1",
                "expires_at":1798761600,"scopes":"repo, read:user"}"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let got: Vec<(&str, &str, &str)> = items
            .iter()
            .map(|i| (i.id.as_str(), i.target.as_str(), i.description.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "alice.credentials.json#api_key",
                    "account:alice/API_KEY",
                    "API key of alice"
                ),
                (
                    "alice.credentials.json#access_token",
                    "account:alice/ACCESS_TOKEN",
                    "OAuth access token of alice; expires 2027-01-01T00:00:00Z; scopes repo read:user"
                ),
                (
                    "alice.credentials.json#refresh_token",
                    "account:alice/REFRESH_TOKEN",
                    "OAuth refresh token of alice; scopes repo read:user"
                ),
            ]
        );
        for item in &items {
            assert_eq!(item.unit, "alice.credentials.json");
            assert_eq!(item.binding, Binding::None);
            assert!(migrate::valid_target(&item.target));
        }
    }

    #[test]
    fn the_oauth_object_and_the_account_field_are_read() {
        let (items, problems) = parse_text(
            "sub/x.credentials.json",
            r#"{"account":"bob","oauth":{"access_token":"a","refresh_token":"r",
                "expires_at":"2027-01-01T01:00:00.5+01:00","scopes":["repo","read:user"]}}"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            ids(&items),
            [
                "sub/x.credentials.json#oauth/access_token",
                "sub/x.credentials.json#oauth/refresh_token"
            ]
        );
        assert_eq!(items[0].target, "account:bob/ACCESS_TOKEN");
        assert_eq!(
            items[0].description,
            "OAuth access token of bob; expires 2027-01-01T00:00:00Z; scopes repo read:user"
        );
        assert_eq!(items[1].unit, "sub/x.credentials.json");
    }

    #[test]
    fn client_keys_become_api_tokens() {
        let (items, problems) = parse_text(
            "train.credentials.json",
            r#"{"train":"train-a","client_api_keys":[{"name":"ci","key":"ck-1"},
                {"name":"ops","key":"ck-2","role":"operator"}]}"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            ids(&items),
            [
                "train.credentials.json#client_api_keys/ci",
                "train.credentials.json#client_api_keys/ops"
            ]
        );
        assert_eq!(items[0].target, "train-a.ci");
        assert_eq!(
            items[0].binding,
            Binding::ApiKey(ApiKey {
                name: "train-a.ci".into(),
                role: "resolver".into()
            })
        );
        assert_eq!(
            items[1].binding,
            Binding::ApiKey(ApiKey {
                name: "train-a.ops".into(),
                role: "operator".into()
            })
        );
        assert_eq!(
            items[1].description,
            "client API key ops of project train-a (role operator)"
        );
    }

    #[test]
    fn bad_fields_are_problems() {
        let cases: &[(&str, &[&str])] = &[
            ("{}", &["f.credentials.json"]),
            (r#"{"client_api_keys":[]}"#, &["f.credentials.json"]),
            ("[]", &["f.credentials.json"]),
            (r#""x""#, &["f.credentials.json"]),
            (r#"{"api_key":5}"#, &["f.credentials.json#api_key"]),
            (r#"{"api_key":""}"#, &["f.credentials.json#api_key"]),
            (r#"{"api_key":"a\nb"}"#, &["f.credentials.json#api_key"]),
            (
                r#"{"api_key":"k","account":"a b"}"#,
                &["f.credentials.json#account"],
            ),
            (
                r#"{"api_key":"k","account":7}"#,
                &["f.credentials.json#account"],
            ),
            (r#"{"oauth":"tok"}"#, &["f.credentials.json#oauth"]),
            (
                r#"{"oauth":{"access_token":["x"]}}"#,
                &["f.credentials.json#oauth/access_token"],
            ),
            (
                r#"{"client_api_keys":[{"name":"ci","key":"k"}]}"#,
                &["f.credentials.json#project"],
            ),
            (
                r#"{"project":"p","train":"q","client_api_keys":[{"name":"ci","key":"k"}]}"#,
                &["f.credentials.json#project"],
            ),
            (
                r#"{"project":"p q","client_api_keys":[{"name":"ci","key":"k"}]}"#,
                &["f.credentials.json#project"],
            ),
            (
                r#"{"project":"p","client_api_keys":{}}"#,
                &["f.credentials.json#client_api_keys"],
            ),
            (
                r#"{"project":"p","client_api_keys":[1,{"key":"k"},{"name":"a/b","key":"k"},
                    {"name":"c","key":"k","role":"admin"},{"name":"d"},{"name":"e","key":""}]}"#,
                &[
                    "f.credentials.json#client_api_keys/[0]",
                    "f.credentials.json#client_api_keys/[1]",
                    "f.credentials.json#client_api_keys/[2]",
                    "f.credentials.json#client_api_keys/c",
                    "f.credentials.json#client_api_keys/d",
                    "f.credentials.json#client_api_keys/e",
                ],
            ),
        ];
        for (json, want) in cases {
            let (_, problems) = parse_text("f.credentials.json", json);
            assert_eq!(problem_ids(&problems), *want, "{json}");
        }
        let long = format!(
            r#"{{"project":"p","client_api_keys":[{{"name":"{}","key":"k"}}]}}"#,
            "n".repeat(63)
        );
        assert_eq!(parse_text("f.credentials.json", &long).1.len(), 1);
        let big = format!(r#"{{"api_key":"{}"}}"#, "k".repeat(migrate::MAX_VALUE + 1));
        let (items, problems) = parse_text("f.credentials.json", &big);
        assert!(items.is_empty() && problems[0].reason.contains("more than"));
    }

    #[test]
    fn duplicate_targets_in_one_file_are_problems() {
        let (items, problems) = parse_text(
            "a.credentials.json",
            r#"{"access_token":"x","oauth":{"access_token":"y"},"api_key":"z",
                "project":"p","client_api_keys":[{"name":"ci","key":"1"},{"name":"ci","key":"2"}]}"#,
        );
        assert_eq!(ids(&items), ["a.credentials.json#api_key"]);
        assert_eq!(
            problem_ids(&problems),
            [
                "a.credentials.json#access_token",
                "a.credentials.json#oauth/access_token",
                "a.credentials.json#client_api_keys/ci",
                "a.credentials.json#client_api_keys/ci",
            ]
        );
    }

    #[test]
    fn expiry_and_scopes_are_read_leniently() {
        let e = |v: Value| expiry(&v);
        assert_eq!(
            e(1_798_761_600.into()).as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            e(1_798_761_600.9.into()).as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            e("1798761600".into()).as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            e("2027-01-01T00:00:00Z".into()).as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            e("2024-02-29T23:59:59.123456Z".into()).as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert_eq!(e(0.into()).as_deref(), Some("1970-01-01T00:00:00Z"));
        for bad in [
            Value::from(-1),
            Value::from(1e300),
            Value::from("soon"),
            Value::from("2027-13-01T00:00:00Z"),
            Value::from(""),
            Value::from("99999999999999999999999"),
            Value::Null,
            Value::from(true),
        ] {
            assert_eq!(expiry(&bad), None, "{bad}");
        }
        assert_eq!(scopes(&"a,b  c".into()), ["a", "b", "c"]);
        assert_eq!(
            scopes(&serde_json::json!(["a b", 5, "c\u{7}", "d"])),
            ["a", "b", "d"]
        );
        assert_eq!(scopes(&serde_json::json!({"a": 1})), Vec::<String>::new());
        assert_eq!(scopes(&Value::from("x ".repeat(100))).len(), MAX_SCOPES);
    }

    #[test]
    fn a_folder_is_discovered_read_and_retired() {
        let dir = TempDir::new("flow");
        let alice = r#"{"access_token":"tok-a","refresh_token":"ref-a"}"#;
        dir.write("alice.credentials.json", alice);
        dir.write("team/bob.credentials.json", r#"{"api_key":"key-b"}"#);
        dir.write("team/deeper/carol.credentials.json", r#"{"api_key":"x"}"#);
        dir.write(".hidden.credentials.json", r#"{"api_key":"x"}"#);
        dir.write("notes.json", r#"{"api_key":"x"}"#);
        dir.write(".credentials.json", r#"{"api_key":"x"}"#);
        let run = dir.run(&[]);

        let found = AccountCredentials::discover(&run).expect("discovers");
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        assert_eq!(
            ids(&found.items),
            [
                "alice.credentials.json#access_token",
                "alice.credentials.json#refresh_token",
                "team/bob.credentials.json#api_key"
            ]
        );
        let read = |id: &str| AccountCredentials::read(&run, id);
        assert_eq!(
            read("alice.credentials.json#access_token").expect("ok"),
            b"tok-a"
        );
        assert_eq!(
            read("alice.credentials.json#refresh_token").expect("ok"),
            b"ref-a"
        );
        assert_eq!(
            read("team/bob.credentials.json#api_key").expect("ok"),
            b"key-b"
        );
        assert!(read("alice.credentials.json#api_key").is_err());
        assert!(read("alice.credentials.json#name").is_err());
        assert!(read("alice.credentials.json").is_err());
        assert!(read("notes.json#api_key").is_err());
        assert!(read("../alice.credentials.json#api_key").is_err());

        AccountCredentials::retire(&run, "alice.credentials.json").expect("retires");
        AccountCredentials::retire(&run, "alice.credentials.json").expect("idempotent");
        assert!(!dir.exists("alice.credentials.json"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".alice.credentials.json.migrated.bak"))
                .expect("bak"),
            alice
        );
        assert!(AccountCredentials::retire(&run, "notes.json").is_err());
        assert!(AccountCredentials::retire(&run, "gone.credentials.json").is_err());

        let again = AccountCredentials::discover(&run).expect("discovers");
        assert_eq!(ids(&again.items), ["team/bob.credentials.json#api_key"]);
    }

    #[test]
    fn a_file_with_a_bad_field_waits_whole() {
        let dir = TempDir::new("blocked");
        dir.write(
            "a.credentials.json",
            r#"{"access_token":"fine","refresh_token":"s3cr3t with spaces\u0001"}"#,
        );
        dir.write("b.credentials.json", r#"{"api_key":"k"}"#);
        dir.write(
            "sub/b.credentials.json",
            r#"{"api_key":"k2","refresh_token":"r"}"#,
        );
        let found = AccountCredentials::discover(&dir.run(&[])).expect("discovers");
        assert!(found.items.is_empty(), "{:?}", found.items);
        assert_eq!(
            problem_ids(&found.problems),
            [
                "a.credentials.json#refresh_token",
                "b.credentials.json#api_key",
                "sub/b.credentials.json#api_key",
                "a.credentials.json#access_token",
                "sub/b.credentials.json#refresh_token",
            ]
        );
        for p in &found.problems {
            assert!(!p.reason.contains("s3cr3t"), "{p:?}");
        }
    }

    #[test]
    fn hostile_files_are_problems() {
        let dir = TempDir::new("hostile");
        dir.write("empty.credentials.json", "");
        dir.write("bin.credentials.json", [0xff, 0x00, 0xfe, 0x7b]);
        dir.write("cut.credentials.json", r#"{"api_key": "abc"#);
        dir.write("deep.credentials.json", "[".repeat(5000));
        dir.write(
            "big.credentials.json",
            vec![b' '; MAX_FILE_BYTES as usize + 1],
        );
        std::fs::create_dir_all(dir.path().join("dir.credentials.json")).expect("mkdir");
        let found = AccountCredentials::discover(&dir.run(&[])).expect("discovers");
        assert!(found.items.is_empty());
        assert_eq!(
            problem_ids(&found.problems),
            [
                "big.credentials.json",
                "bin.credentials.json",
                "cut.credentials.json",
                "deep.credentials.json",
                "empty.credentials.json",
            ]
        );
        assert!(AccountCredentials::discover(&RunConfig {
            source: None,
            options: Vec::new()
        })
        .is_err());
    }
}
