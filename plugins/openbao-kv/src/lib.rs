//! Migrator for a KV v2 mount of OpenBao (or Vault), over HTTP through the
//! host's `outbound`.
//!
//! `--source` is the server's base URL (`http://127.0.0.1:8200`); the host
//! grants its origin for the run. Options:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `mount` | `secret` | the KV v2 mount |
//! | `path` | the mount's root | the folder inside the mount to import |
//! | `token_ref` | none | a secret reference holding the token, sent as `X-Vault-Token: ${SECRET:<token_ref>}` (the host expands it; the plugin never sees it) |
//! | `namespace` | none | sent as `X-Vault-Namespace` |
//! | `scope` | `openbao:<mount>` | the scope of the new secrets (mount characters outside `[A-Za-z0-9_.-]` become `-`) |
//! | `delete` | `false` | `true`: retiring a path destroys the version that was imported and older ones, never a newer one (see below); otherwise the source is left as it is |
//!
//! Discovery lists folders with `GET /v1/<mount>/metadata/<folder>/?list=true`
//! (keys ending in `/` are folders: at most 32 deep, 100,000 items in all)
//! and reads each secret with `GET /v1/<mount>/data/<path>`. The
//! description comes from `custom_metadata.description`, which the data
//! answer carries (an older server without it costs one
//! `GET /v1/<mount>/metadata/<path>` more).
//!
//! | item field | value |
//! |---|---|
//! | id | `<path>#<key>` (path inside the mount) |
//! | target | `<scope>/<path with / as .>.<key>`, characters outside `[A-Za-z0-9_.-]` as `_` |
//! | description | `custom_metadata.description`, else `OpenBao <mount>/<path> key <key>` |
//! | unit | `<path>`: all keys of a path retire together; with `delete=true`, `<path>@<version>`, the version discovery saw |
//!
//! A string value is migrated as its bytes, any other JSON value as its
//! JSON text. With `delete=true` a path with any key that cannot be
//! migrated is migrated not at all, since destroying it would lose that
//! key.
//!
//! Retiring with `delete=true` is a check-and-set on `current_version`: the
//! path's metadata is read; when its current version is still the one
//! imported, the path is deleted (`DELETE /v1/<mount>/metadata/<path>`);
//! when a newer version was written since, only the imported version and
//! older ones are destroyed (`PUT /v1/<mount>/destroy/<path>`) and the
//! newer one survives (run again with `--again` to import it).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use keyward_plugin_sdk::http::Request;
use keyward_plugin_sdk::migrate::{
    self, Binding, Discovery, Item, MigratorInfo, Problem, RunConfig,
};
use keyward_plugin_sdk::oauth::percent_encode;
use keyward_plugin_sdk::{secret_ref, Error, Migrator};
use serde_json::{Map, Value};

/// Deepest folder nesting listed.
const MAX_DEPTH: usize = 32;

/// Most items one discovery returns.
const MAX_ITEMS: usize = 100_000;

/// The reason for a 403.
const REFUSED: &str = "OpenBao refused the token (403)";

/// Longest piece of a server's error message quoted.
const MAX_QUOTED: usize = 200;

struct OpenbaoKv;

impl Migrator for OpenbaoKv {
    fn info() -> MigratorInfo {
        MigratorInfo {
            name: "openbao-kv".into(),
            description: "a KV v2 mount of OpenBao or Vault, one secret per key, over HTTP".into(),
        }
    }

    fn discover(run: &RunConfig) -> Result<Discovery, Error> {
        let cfg = Config::of(run)?;
        discover_with(&cfg, &mut send)
    }

    fn read(run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
        let cfg = Config::of(run).map_err(|e| e.message().to_owned())?;
        read_with(&cfg, id, &mut cached(send))
    }

    fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
        let cfg = Config::of(run).map_err(|e| e.message().to_owned())?;
        retire_with(&cfg, unit, &mut send)
    }
}

keyward_plugin_sdk::export_migrator!(OpenbaoKv);

/// One HTTP request: `(method, url, body, config)` to `(status, body)`. The real
/// one goes through the host; tests pass a fake server.
type Fetch<'a> = dyn FnMut(&str, &str, Option<&[u8]>, &Config) -> Answer + 'a;

/// A server's answer: `(status, body)`.
type Answer = Result<(u16, Vec<u8>), Error>;

/// Sends a request through the host, with the token (as a reference the
/// host expands) and the namespace.
fn send(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    cfg: &Config,
) -> Result<(u16, Vec<u8>), Error> {
    let mut req = Request::new(method, url);
    if let Some(body) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.to_vec());
    }
    if let Some(token) = &cfg.token_ref {
        req = req.header("X-Vault-Token", secret_ref(token));
    }
    if let Some(ns) = &cfg.namespace {
        req = req.header("X-Vault-Namespace", ns.as_str());
    }
    let response = req.send().map_err(|e| e.context("openbao-kv"))?;
    Ok((response.status, response.body))
}

thread_local! {
    /// Data answers already fetched in this call, by URL: a `read` batch
    /// asks for several keys of one path. Each call is a fresh instance,
    /// so nothing outlives the call.
    static DATA: RefCell<HashMap<String, (u16, Vec<u8>)>> = RefCell::new(HashMap::new());
}

/// `fetch` with successful `GET`s remembered for the rest of the call.
fn cached(
    mut fetch: impl FnMut(&str, &str, Option<&[u8]>, &Config) -> Answer,
) -> impl FnMut(&str, &str, Option<&[u8]>, &Config) -> Answer {
    move |method, url, body, cfg| {
        if method == "GET" {
            if let Some(hit) = DATA.with(|d| d.borrow().get(url).cloned()) {
                return Ok(hit);
            }
        }
        let answer = fetch(method, url, body, cfg)?;
        if method == "GET" && answer.0 == 200 {
            DATA.with(|d| d.borrow_mut().insert(url.to_owned(), answer.clone()));
        }
        Ok(answer)
    }
}

/// A run's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    /// The base URL without a trailing `/`.
    base: String,
    /// The mount, without surrounding `/`.
    mount: String,
    /// The folder to import, without surrounding `/`; empty for the root.
    prefix: String,
    token_ref: Option<String>,
    namespace: Option<String>,
    /// The scope of the new secrets.
    scope: String,
    /// Whether retiring destroys the path at the source.
    delete: bool,
}

impl Config {
    fn of(run: &RunConfig) -> Result<Config, Error> {
        let base = base_url(run.source.as_deref())?;
        let opt = |k| migrate::option(run, k);
        let mount = clean_path(opt("mount").unwrap_or("secret"))
            .map_err(|e| Error::Invalid(format!("--option mount: {e}")))?;
        if mount.is_empty() {
            return Err(Error::Invalid("--option mount: empty".into()));
        }
        let prefix = clean_path(opt("path").unwrap_or(""))
            .map_err(|e| Error::Invalid(format!("--option path: {e}")))?;
        let token_ref = match opt("token_ref") {
            None | Some("") => None,
            Some(r) if migrate::valid_reference(r) => Some(r.to_owned()),
            Some(_) => {
                return Err(Error::Invalid(
                    "--option token_ref: not a secret reference (NAME or SCOPE/NAME)".into(),
                ))
            }
        };
        let namespace = match opt("namespace") {
            None | Some("") => None,
            Some(ns) if ns.chars().all(|c| c.is_ascii_graphic()) => Some(ns.to_owned()),
            Some(_) => {
                return Err(Error::Invalid(
                    "--option namespace: printable ASCII without spaces only".into(),
                ))
            }
        };
        let scope = match opt("scope") {
            Some(s) => s.to_owned(),
            None => default_scope(&mount),
        };
        if !migrate::valid_scope(&scope) {
            return Err(Error::Invalid(format!(
                "scope {scope:?} is not a scope (global or <kind>:<id>); give one with --option \
                 scope=KIND:ID"
            )));
        }
        let delete = match opt("delete") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::Invalid("--option delete: true or false".into())),
        };
        Ok(Config {
            base,
            mount,
            prefix,
            token_ref,
            namespace,
            scope,
            delete,
        })
    }

    /// `{base}/v1/{mount}/{kind}/{path}`, every segment percent-encoded.
    fn url(&self, kind: &str, path: &str) -> String {
        format!(
            "{}/v1/{}/{kind}/{}",
            self.base,
            encode(&self.mount),
            encode(path)
        )
    }

    /// The list URL of `folder` (empty, or ending in `/`).
    fn list_url(&self, folder: &str) -> String {
        let mut url = self.url("metadata", folder);
        if !url.ends_with('/') {
            url.push('/');
        }
        url.push_str("?list=true");
        url
    }
}

/// The base URL, checked: `http(s)://authority[/path]`, no credentials,
/// query or fragment; without a trailing `/`.
fn base_url(source: Option<&str>) -> Result<String, Error> {
    let Some(source) = source else {
        return Err(Error::Invalid(
            "this migrator reads OpenBao: give its URL with --source http(s)://HOST:PORT".into(),
        ));
    };
    let shown: String = source.chars().take(100).collect();
    let bad = |why: &str| Error::Invalid(format!("--source {shown:?}: {why}"));
    let rest = source
        .strip_prefix("https://")
        .or_else(|| source.strip_prefix("http://"))
        .ok_or_else(|| bad("not an http(s):// URL"))?;
    if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("holds blanks or control characters"));
    }
    if source.contains(['?', '#']) {
        return Err(bad("a base URL has no query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad(
            "credentials do not go in the URL; use --option token_ref",
        ));
    }
    Ok(source.trim_end_matches('/').to_owned())
}

/// A mount or path option without surrounding `/`, each segment checked.
fn clean_path(text: &str) -> Result<String, String> {
    let text = text.trim_matches('/');
    if text.is_empty() {
        return Ok(String::new());
    }
    for segment in text.split('/') {
        check_segment(segment)?;
    }
    Ok(text.to_owned())
}

/// A path segment the plugin can put in a URL and an id.
fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err(format!("{segment:?} is not a path segment"));
    }
    if segment.contains('#') || segment.chars().any(char::is_control) {
        return Err(format!(
            "{:?} holds # or control characters",
            cut(segment, 64)
        ));
    }
    Ok(())
}

/// `openbao:<mount>`, mount characters outside the id grammar as `-`.
fn default_scope(mount: &str) -> String {
    let id: String = mount
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("openbao:{id}")
}

/// Percent-encodes each `/`-separated segment of `path`.
fn encode(path: &str) -> String {
    path.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// The secret name of `key` at `path`: the path with `/` as `.`, then `.`
/// and the key, characters outside `[A-Za-z0-9_.-]` as `_`.
fn target_name(path: &str, key: &str) -> Result<String, String> {
    let name: String = format!("{}.{key}", path.replace('/', "."))
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.len() > 128 {
        return Err(format!(
            "the secret name would be {} bytes, more than 128",
            name.len()
        ));
    }
    if !migrate::valid_name(&name) {
        return Err(format!(
            "{:?} is no secret name (it must start with a letter or digit)",
            cut(&name, 64)
        ));
    }
    Ok(name)
}

/// The keys of a list answer (`{"data": {"keys": [...]}}`).
fn parse_list(body: &[u8]) -> Result<Vec<String>, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the list answer is not JSON ({e})"))?;
    let keys = doc
        .pointer("/data/keys")
        .and_then(Value::as_array)
        .ok_or("the list answer has no data.keys")?;
    let mut out: Vec<String> = keys
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// What a data answer says.
#[derive(Debug, PartialEq)]
struct SecretData {
    /// The key/value pairs of the current version; `None` when it is
    /// deleted or destroyed.
    data: Option<Map<String, Value>>,
    /// `custom_metadata.description`: outer `None` when the answer does not
    /// carry `custom_metadata` at all (an older server), inner `None` when
    /// there is no description.
    description: Option<Option<String>>,
    /// `metadata.version`: the version the answer is of.
    version: Option<u64>,
}

/// Parses a data answer (`{"data": {"data": {...}, "metadata": {...}}}`).
fn parse_data(body: &[u8]) -> Result<SecretData, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the data answer is not JSON ({e})"))?;
    let outer = doc
        .get("data")
        .and_then(Value::as_object)
        .ok_or("the data answer has no data object")?;
    let data = match outer.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => return Err("the secret's data is not an object".into()),
    };
    let description = outer
        .get("metadata")
        .and_then(|m| m.get("custom_metadata"))
        .map(description_of);
    let version = outer
        .get("metadata")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_u64);
    Ok(SecretData {
        data,
        description,
        version,
    })
}

/// `custom_metadata.description` of a metadata answer
/// (`{"data": {"custom_metadata": {...}}}`), if any.
fn parse_metadata(body: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    description_of(doc.pointer("/data/custom_metadata")?)
}

/// The `description` of a `custom_metadata` object, made printable and
/// short.
fn description_of(custom: &Value) -> Option<String> {
    let text = custom.get("description")?.as_str()?;
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| cut(clean, 500))
}

/// The error of a non-2xx answer that is not otherwise handled: the
/// server's `errors`, cut short.
fn status_reason(line: &str, status: u16, body: &[u8]) -> String {
    if status == 403 {
        return format!("{REFUSED}: {line}");
    }
    let errors = serde_json::from_slice::<Value>(body).ok().and_then(|doc| {
        let list: Vec<&str> = doc
            .get("errors")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        (!list.is_empty()).then(|| list.join("; "))
    });
    match errors {
        Some(e) => format!("{line} → {status}: {}", cut(&e, MAX_QUOTED)),
        None => format!("{line} → {status}"),
    }
}

/// Discovery with `fetch` as the network.
fn discover_with(cfg: &Config, fetch: &mut Fetch<'_>) -> Result<Discovery, Error> {
    let mut walk = Walk {
        cfg,
        items: Vec::new(),
        problems: Vec::new(),
        blocked: BTreeSet::new(),
        stopped: false,
    };
    let root = if cfg.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", cfg.prefix)
    };
    let url = cfg.list_url(&root);
    let (status, body) = fetch("GET", &url, None, cfg)?;
    match status {
        200 => {
            let keys =
                parse_list(&body).map_err(|e| Error::Upstream(format!("LIST /{root}: {e}")))?;
            walk.folder(&root, keys, 0, fetch)?;
        }
        404 if cfg.prefix.is_empty() => {}
        // `path` may name one secret rather than a folder.
        404 => walk.secret(&cfg.prefix, fetch)?,
        403 => {
            let hint = if cfg.token_ref.is_none() {
                " (no --option token_ref=SCOPE/NAME was given)"
            } else {
                ""
            };
            return Err(Error::Denied(format!(
                "{REFUSED}: LIST {}/{root}{hint}",
                cfg.mount
            )));
        }
        _ => {
            return Err(Error::Upstream(status_reason(
                &format!("LIST {}/{root}", cfg.mount),
                status,
                &body,
            )))
        }
    }
    Ok(walk.finish())
}

/// A discovery in progress.
struct Walk<'c> {
    cfg: &'c Config,
    items: Vec<Item>,
    problems: Vec<Problem>,
    /// Paths with a key that cannot be migrated.
    blocked: BTreeSet<String>,
    /// Set once a limit stopped the walk: nothing more is fetched.
    stopped: bool,
}

impl Walk<'_> {
    /// Walks the listed `keys` of `folder` (empty or ending in `/`).
    fn folder(
        &mut self,
        folder: &str,
        keys: Vec<String>,
        depth: usize,
        fetch: &mut Fetch<'_>,
    ) -> Result<(), Error> {
        for key in keys {
            if self.stopped {
                return Ok(());
            }
            let path = format!("{folder}{key}");
            let (name, is_folder) = match key.strip_suffix('/') {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            if let Err(why) = check_segment(name) {
                self.problem(&path, format!("{why}; not imported"));
                continue;
            }
            if !is_folder {
                self.secret(&path, fetch)?;
                continue;
            }
            if depth + 1 > MAX_DEPTH {
                self.problem(
                    &path,
                    format!("more than {MAX_DEPTH} folders deep; not listed"),
                );
                continue;
            }
            let url = self.cfg.list_url(&path);
            let Some((status, body)) = self.fetch(&path, "GET", &url, fetch)? else {
                return Ok(());
            };
            match status {
                200 => match parse_list(&body) {
                    Ok(inner) => self.folder(&path, inner, depth + 1, fetch)?,
                    Err(e) => self.problem(&path, e),
                },
                // Gone since its parent was listed.
                404 => {}
                _ => {
                    let reason = status_reason(&format!("LIST {path}"), status, &body);
                    self.problem(&path, reason);
                }
            }
        }
        Ok(())
    }

    /// Reads the secret at `path` and adds one item per key.
    fn secret(&mut self, path: &str, fetch: &mut Fetch<'_>) -> Result<(), Error> {
        let cfg = self.cfg;
        let Some((status, body)) = self.fetch(path, "GET", &cfg.url("data", path), fetch)? else {
            return Ok(());
        };
        let parsed = match status {
            200 => parse_data(&body),
            404 => Ok(SecretData {
                data: None,
                description: None,
                version: None,
            }),
            _ => Err(status_reason(&format!("GET {path}"), status, &body)),
        };
        let secret = match parsed {
            Ok(s) => s,
            Err(e) => {
                self.problem(path, e);
                return Ok(());
            }
        };
        let Some(data) = secret.data else {
            self.problem(
                path,
                "no current version (deleted, destroyed or never written): nothing to import"
                    .to_owned(),
            );
            return Ok(());
        };
        if data.is_empty() {
            self.problem(path, "holds no keys".to_owned());
            return Ok(());
        }
        let description = match secret.description {
            Some(d) => d,
            None => match self.fetch(path, "GET", &cfg.url("metadata", path), fetch)? {
                Some((200, body)) => parse_metadata(&body),
                // Without the metadata the default description will do.
                Some(_) => None,
                None => return Ok(()),
            },
        };
        // What retiring with delete=true may destroy: up to this version.
        let unit = match (cfg.delete, secret.version) {
            (false, _) => path.to_owned(),
            (true, Some(v)) => format!("{path}@{v}"),
            (true, None) => {
                self.problem(
                    path,
                    "the data answer carries no metadata.version, so delete=true cannot tell \
                     the imported version from a newer one; not migrated"
                        .to_owned(),
                );
                return Ok(());
            }
        };
        for (key, value) in &data {
            let id = format!("{path}#{key}");
            if self.items.len() >= MAX_ITEMS {
                self.problem(
                    &id,
                    format!(
                        "not imported: a discovery returns at most {MAX_ITEMS} items; import \
                         the rest with --option path=FOLDER"
                    ),
                );
                self.stopped = true;
                return Ok(());
            }
            match item_for(cfg, path, key, value, description.as_deref()) {
                Ok(item) => self.items.push(Item {
                    unit: unit.clone(),
                    ..item
                }),
                Err(reason) => self.problem(&id, reason),
            }
        }
        Ok(())
    }

    /// One request about `about`; `None` (after a problem saying so) when
    /// the plugin's call limit stopped the walk.
    fn fetch(
        &mut self,
        about: &str,
        method: &str,
        url: &str,
        fetch: &mut Fetch<'_>,
    ) -> Result<Option<(u16, Vec<u8>)>, Error> {
        match fetch(method, url, None, self.cfg) {
            Ok(answer) => Ok(Some(answer)),
            Err(Error::Limit(why)) => {
                self.problem(
                    about,
                    format!(
                        "discovery stopped here ({why}); {} items were found before; import \
                         the rest with --option path=FOLDER",
                        self.items.len()
                    ),
                );
                self.stopped = true;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn problem(&mut self, id: &str, reason: String) {
        let path = id.split_once('#').map_or(id, |(p, _)| p);
        self.blocked.insert(path.to_owned());
        self.problems.push(Problem {
            id: id.to_owned(),
            reason,
        });
    }

    /// The discovery: duplicate targets refused and, when retiring destroys
    /// a path, paths with a problem kept whole.
    fn finish(mut self) -> Discovery {
        let (items, clashing) = migrate::refuse_duplicate_targets(std::mem::take(&mut self.items));
        for p in clashing {
            self.problem(&p.id, p.reason);
        }
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            let path = item
                .unit
                .rsplit_once('@')
                .map_or(item.unit.as_str(), |(p, _)| p);
            if self.cfg.delete && self.blocked.contains(path) {
                let reason = format!(
                    "not migrated: another key of {} cannot be, and delete=true destroys a path \
                     as a whole",
                    item.unit
                );
                self.problems.push(Problem {
                    id: item.id,
                    reason,
                });
            } else {
                kept.push(item);
            }
        }
        Discovery {
            items: kept,
            problems: self.problems,
        }
    }
}

/// The item for `key` of the secret at `path`, or why there is none.
fn item_for(
    cfg: &Config,
    path: &str,
    key: &str,
    value: &Value,
    description: Option<&str>,
) -> Result<Item, String> {
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err("the key is empty or holds control characters".into());
    }
    check_value(value)?;
    let name = target_name(path, key)?;
    Ok(Item {
        id: format!("{path}#{key}"),
        target: format!("{}/{name}", cfg.scope),
        description: match description {
            Some(d) => d.to_owned(),
            None => format!("OpenBao {}/{path} key {key}", cfg.mount),
        },
        binding: Binding::None,
        unit: path.to_owned(),
    })
}

/// A value as the secret's bytes: a string's own, anything else's JSON
/// text.
fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// A value to migrate: as bytes, not empty and at most 64 KiB. The reasons
/// never quote it.
fn check_value(value: &Value) -> Result<(), String> {
    let len = match value {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    if len == 0 {
        return Err("empty value".into());
    }
    if len > migrate::MAX_VALUE {
        return Err(format!(
            "{len} bytes, more than the {} a secret may hold",
            migrate::MAX_VALUE
        ));
    }
    Ok(())
}

/// `<path>#<key>` split and checked.
fn split_id(id: &str) -> Result<(&str, &str), String> {
    let (path, key) = id
        .split_once('#')
        .ok_or_else(|| format!("{id}: not an id of this migrator (PATH#KEY)"))?;
    check_path(path).map_err(|e| format!("{id}: {e}"))?;
    Ok((path, key))
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("no path".into());
    }
    path.split('/').try_for_each(check_segment)
}

/// The value of item `id`, with `fetch` as the network.
fn read_with(cfg: &Config, id: &str, fetch: &mut Fetch<'_>) -> Result<Vec<u8>, String> {
    let (path, key) = split_id(id)?;
    let (status, body) = fetch("GET", &cfg.url("data", path), None, cfg)
        .map_err(|e| format!("{id}: {}", e.message()))?;
    match status {
        200 => {}
        404 => return Err(format!("{id}: no current version at the source (any more)")),
        _ => {
            return Err(format!(
                "{id}: {}",
                status_reason(&format!("GET {path}"), status, &body)
            ))
        }
    }
    let data = parse_data(&body)
        .map_err(|e| format!("{id}: {e}"))?
        .data
        .ok_or_else(|| format!("{id}: no current version at the source (any more)"))?;
    let value = data
        .get(key)
        .ok_or_else(|| format!("{id}: no key {key} at the source (any more)"))?;
    check_value(value).map_err(|e| format!("{id}: {e}"))?;
    Ok(value_bytes(value))
}

/// Retires `unit`: with `delete=true` (unit `<path>@<version>`) destroys
/// the imported version and older ones, never a newer one (see the module
/// docs); else nothing. A path that is gone already is retired.
fn retire_with(cfg: &Config, unit: &str, fetch: &mut Fetch<'_>) -> Result<(), String> {
    if !cfg.delete {
        check_path(unit).map_err(|e| format!("{unit}: {e}"))?;
        return Ok(());
    }
    let (path, imported) = unit
        .rsplit_once('@')
        .and_then(|(p, v)| Some((p, v.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("{unit}: not a unit of a delete=true run (PATH@VERSION)"))?;
    check_path(path).map_err(|e| format!("{unit}: {e}"))?;
    let net = |e: Error| format!("{unit}: {}", e.message());
    let (status, body) = fetch("GET", &cfg.url("metadata", path), None, cfg).map_err(net)?;
    let meta = match status {
        200 => parse_versions(&body).map_err(|e| format!("{unit}: {e}"))?,
        404 => return Ok(()),
        _ => {
            return Err(format!(
                "{unit}: {}",
                status_reason(&format!("GET metadata {path}"), status, &body)
            ))
        }
    };
    let (status, body, what) = if meta.current == imported {
        // Nothing newer (checked just now): the path goes, every version
        // with it.
        let (s, b) = fetch("DELETE", &cfg.url("metadata", path), None, cfg).map_err(net)?;
        (s, b, "DELETE")
    } else if meta.current > imported {
        // Written since the import: the newer versions survive.
        let versions: Vec<u64> = meta
            .live
            .iter()
            .copied()
            .filter(|v| *v <= imported)
            .collect();
        if versions.is_empty() {
            return Ok(());
        }
        let body = serde_json::json!({ "versions": versions }).to_string();
        let (s, b) =
            fetch("PUT", &cfg.url("destroy", path), Some(body.as_bytes()), cfg).map_err(net)?;
        (s, b, "PUT destroy")
    } else {
        return Err(format!(
            "{unit}: the current version at the source is {}, older than the {imported} \
             imported (deleted and written again?); nothing destroyed",
            meta.current
        ));
    };
    match status {
        200..=299 | 404 => Ok(()),
        _ => Err(format!(
            "{unit}: {}",
            status_reason(&format!("{what} {path}"), status, &body)
        )),
    }
}

/// What a metadata answer says of a path's versions.
struct Versions {
    /// `current_version`.
    current: u64,
    /// Versions not destroyed yet, in order.
    live: Vec<u64>,
}

/// Parses `{"data": {"current_version": N, "versions": {"1": {"destroyed": false}, ...}}}`.
fn parse_versions(body: &[u8]) -> Result<Versions, String> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the metadata answer is not JSON ({e})"))?;
    let current = doc
        .pointer("/data/current_version")
        .and_then(Value::as_u64)
        .ok_or("the metadata answer has no current_version")?;
    let mut live: Vec<u64> = doc
        .pointer("/data/versions")
        .and_then(Value::as_object)
        .map(|versions| {
            versions
                .iter()
                .filter(|(_, v)| v.get("destroyed") != Some(&Value::Bool(true)))
                .filter_map(|(k, _)| k.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    live.sort_unstable();
    Ok(Versions { current, live })
}

fn cut(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(source: Option<&str>, options: &[(&str, &str)]) -> RunConfig {
        RunConfig {
            source: source.map(str::to_owned),
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn cfg(options: &[(&str, &str)]) -> Config {
        Config::of(&run(Some("http://127.0.0.1:8200"), options)).expect("valid")
    }

    /// A fake KV v2 server: secrets by path (`a/b`), each a JSON data
    /// object or `None` (deleted), plus the requests it saw.
    #[derive(Default)]
    struct Fake {
        secrets: BTreeMap<String, Option<Value>>,
        descriptions: BTreeMap<String, String>,
        /// Data answers carry custom_metadata (a current server).
        custom_in_data: bool,
        /// Statuses forced for a URL suffix.
        force: BTreeMap<String, u16>,
        /// Requests answered before `limit` is reported.
        budget: Option<usize>,
        /// Current version by path (1 when not set).
        versions: BTreeMap<String, u64>,
        /// Versions destroyed, by path.
        destroyed: BTreeMap<String, Vec<u64>>,
        seen: Vec<String>,
    }

    impl Fake {
        fn new(secrets: &[(&str, Value)]) -> Self {
            Fake {
                secrets: secrets
                    .iter()
                    .map(|(p, v)| ((*p).to_owned(), Some(v.clone())))
                    .collect(),
                custom_in_data: true,
                ..Fake::default()
            }
        }

        fn answer(
            &mut self,
            method: &str,
            url: &str,
            body: Option<&[u8]>,
        ) -> Result<(u16, Vec<u8>), Error> {
            self.seen.push(format!("{method} {url}"));
            if let Some(b) = self.budget.as_mut() {
                if *b == 0 {
                    return Err(Error::Limit("outbound_calls (4) reached".into()));
                }
                *b -= 1;
            }
            let rest = url
                .strip_prefix("http://127.0.0.1:8200/v1/secret/")
                .expect("the secret mount");
            for (suffix, status) in &self.force {
                if rest.ends_with(suffix.as_str()) {
                    return Ok((*status, br#"{"errors":["permission denied"]}"#.to_vec()));
                }
            }
            let json = |v: Value| Ok((200, v.to_string().into_bytes()));
            if let Some(folder) = rest.strip_prefix("metadata/") {
                if let Some(folder) = folder.strip_suffix("?list=true") {
                    assert!(method == "GET" && (folder.is_empty() || folder.ends_with('/')));
                    let mut keys = BTreeSet::new();
                    for path in self.secrets.keys() {
                        if let Some(below) = path.strip_prefix(folder) {
                            keys.insert(match below.split_once('/') {
                                Some((dir, _)) => format!("{dir}/"),
                                None => below.to_owned(),
                            });
                        }
                    }
                    if keys.is_empty() {
                        return Ok((404, br#"{"errors":[]}"#.to_vec()));
                    }
                    return json(serde_json::json!({"data": {"keys": keys}}));
                }
                if method == "DELETE" {
                    self.secrets.remove(folder);
                    return Ok((204, Vec::new()));
                }
                if !self.secrets.contains_key(folder) {
                    return Ok((404, b"{}".to_vec()));
                }
                let custom = self
                    .descriptions
                    .get(folder)
                    .map(|d| serde_json::json!({"description": d}));
                let current = self.versions.get(folder).copied().unwrap_or(1);
                let gone = self.destroyed.get(folder).cloned().unwrap_or_default();
                let versions: Map<String, Value> = (1..=current)
                    .map(|v| {
                        (
                            v.to_string(),
                            serde_json::json!({"destroyed": gone.contains(&v)}),
                        )
                    })
                    .collect();
                return json(serde_json::json!({"data": {
                    "custom_metadata": custom,
                    "current_version": current,
                    "versions": versions,
                }}));
            }
            if let Some(path) = rest.strip_prefix("destroy/") {
                assert_eq!(method, "PUT");
                let asked: Value =
                    serde_json::from_slice(body.expect("a body")).expect("JSON body");
                let asked: Vec<u64> = asked["versions"]
                    .as_array()
                    .expect("versions")
                    .iter()
                    .filter_map(Value::as_u64)
                    .collect();
                self.destroyed
                    .entry(path.to_owned())
                    .or_default()
                    .extend(asked);
                return Ok((204, Vec::new()));
            }
            let path = rest.strip_prefix("data/").expect("data");
            match self.secrets.get(path) {
                None => Ok((404, br#"{"errors":[]}"#.to_vec())),
                Some(None) => Ok((
                    404,
                    serde_json::json!({"data": {"data": null, "metadata": {"deletion_time": "x"}}})
                        .to_string()
                        .into_bytes(),
                )),
                Some(Some(data)) => {
                    let version = self.versions.get(path).copied().unwrap_or(1);
                    let mut metadata = serde_json::json!({"version": version});
                    if self.custom_in_data {
                        metadata["custom_metadata"] = match self.descriptions.get(path) {
                            Some(d) => serde_json::json!({"description": d}),
                            None => Value::Null,
                        };
                    }
                    json(serde_json::json!({"data": {"data": data, "metadata": metadata}}))
                }
            }
        }

        fn discover(&mut self, cfg: &Config) -> Result<Discovery, Error> {
            discover_with(cfg, &mut |m: &str,
                                     u: &str,
                                     b: Option<&[u8]>,
                                     _: &Config| {
                self.answer(m, u, b)
            })
        }
    }

    fn ids(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    fn problem_ids(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn options_are_checked() {
        let c = cfg(&[]);
        assert_eq!(c.base, "http://127.0.0.1:8200");
        assert_eq!((c.mount.as_str(), c.prefix.as_str()), ("secret", ""));
        assert_eq!(c.scope, "openbao:secret");
        assert!(!c.delete && c.token_ref.is_none());
        let c = cfg(&[
            ("mount", "/team/kv v2/"),
            ("path", "apps/web/"),
            ("token_ref", "global/BAO_TOKEN"),
            ("delete", "true"),
        ]);
        assert_eq!(c.mount, "team/kv v2");
        assert_eq!(c.prefix, "apps/web");
        assert_eq!(c.scope, "openbao:team-kv-v2");
        assert_eq!(c.token_ref.as_deref(), Some("global/BAO_TOKEN"));
        assert!(c.delete);
        assert_eq!(cfg(&[("scope", "global")]).scope, "global");
        let ok = Some("https://bao.example/prefix/");
        assert_eq!(
            Config::of(&run(ok, &[])).expect("ok").base,
            "https://bao.example/prefix"
        );
        for (source, options) in [
            (None, vec![]),
            (Some("/source"), vec![]),
            (Some("ftp://x"), vec![]),
            (Some("http://"), vec![]),
            (Some("http://u:p@h:8200"), vec![]),
            (Some("http://h:8200/?x=1"), vec![]),
            (Some("http://h :8200"), vec![]),
            (Some("http://h"), vec![("mount", "")]),
            (Some("http://h"), vec![("mount", "a/../b")]),
            (Some("http://h"), vec![("path", "a//b")]),
            (Some("http://h"), vec![("path", "a#b")]),
            (Some("http://h"), vec![("token_ref", "bad ref")]),
            (Some("http://h"), vec![("scope", "Nope")]),
            (Some("http://h"), vec![("mount", "_kv")]),
            (Some("http://h"), vec![("delete", "yes")]),
            (Some("http://h"), vec![("namespace", "a b")]),
        ] {
            let err = Config::of(&run(source, &options)).expect_err("invalid");
            assert!(matches!(err, Error::Invalid(_)), "{source:?} {options:?}");
        }
    }

    #[test]
    fn urls_are_built_and_encoded() {
        let c = cfg(&[("mount", "team/kv 2")]);
        assert_eq!(
            c.list_url(""),
            "http://127.0.0.1:8200/v1/team/kv%202/metadata/?list=true"
        );
        assert_eq!(
            c.list_url("a b/c/"),
            "http://127.0.0.1:8200/v1/team/kv%202/metadata/a%20b/c/?list=true"
        );
        assert_eq!(
            c.url("data", "apps/db?x=1&y"),
            "http://127.0.0.1:8200/v1/team/kv%202/data/apps/db%3Fx%3D1%26y"
        );
        assert_eq!(
            c.url("metadata", "ü/~._-"),
            "http://127.0.0.1:8200/v1/team/kv%202/metadata/%C3%BC/~._-"
        );
    }

    #[test]
    fn names_are_mapped() {
        assert_eq!(
            target_name("apps/web", "db_password").as_deref(),
            Ok("apps.web.db_password")
        );
        assert_eq!(target_name("a b/ü", "k:1").as_deref(), Ok("a_b._.k_1"));
        assert!(target_name("_x", "k").is_err());
        assert!(target_name(".x", "k").is_err());
        assert!(target_name(&"p".repeat(120), "key-of-9").is_err());
        assert_eq!(
            target_name(&"p".repeat(118), "key-of-9").map(|n| n.len()),
            Ok(127)
        );
    }

    #[test]
    fn answers_are_parsed() {
        assert_eq!(
            parse_list(br#"{"data":{"keys":["b","a/",7,"a/"]}}"#),
            Ok(vec!["a/".to_owned(), "b".to_owned()])
        );
        for bad in [&b""[..], b"{", b"[]", br#"{"data":{}}"#, b"\xff"] {
            assert!(parse_list(bad).is_err());
        }
        let d = parse_data(
            br#"{"data":{"data":{"k":"v","n":5},"metadata":{"custom_metadata":{"description":"DB\npassword"}}}}"#,
        )
        .expect("parses");
        assert_eq!(d.data.expect("data").len(), 2);
        assert_eq!(d.description, Some(Some("DB password".into())));
        let d = parse_data(br#"{"data":{"data":null,"metadata":{"custom_metadata":null}}}"#)
            .expect("parses");
        assert_eq!((d.data, d.description), (None, Some(None)));
        let d = parse_data(br#"{"data":{"data":{},"metadata":{"version":1}}}"#).expect("parses");
        assert_eq!(d.description, None);
        for bad in [&b"nope"[..], br#"{"data":5}"#, br#"{"data":{"data":"x"}}"#] {
            assert!(parse_data(bad).is_err());
        }
        assert_eq!(
            parse_metadata(br#"{"data":{"custom_metadata":{"description":"  x "}}}"#),
            Some("x".into())
        );
        assert_eq!(
            parse_metadata(br#"{"data":{"custom_metadata":{"description":7}}}"#),
            None
        );
        assert_eq!(parse_metadata(b"garbage"), None);
        assert_eq!(
            status_reason("GET a", 500, br#"{"errors":["boom","bang"]}"#),
            "GET a → 500: boom; bang"
        );
        assert_eq!(status_reason("GET a", 502, b"<html>"), "GET a → 502");
        assert!(status_reason("GET a", 403, b"").starts_with(REFUSED));
    }

    /// Answers as OpenBao 2.7.2 (`bao server -dev`) gives them.
    #[test]
    fn real_openbao_answers_parse() {
        let list = br#"{"request_id":"652aa1b7-b98d-9063-bdab-8231972c10ed","lease_id":"","renewable":false,"lease_duration":0,"data":{"keys":["apps/","gone","top"]},"wrap_info":null,"warnings":null,"auth":null}"#;
        assert_eq!(parse_list(list).expect("parses"), ["apps/", "gone", "top"]);
        let data = br#"{"request_id":"4e165666-44f2-8bb6-98d7-da5335d727ec","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"db_password":"pw","port":"5432"},"metadata":{"created_time":"2026-12-02T15:13:07.721870874Z","custom_metadata":{"description":"web DB"},"deletion_time":"","destroyed":false,"version":1}},"wrap_info":null,"warnings":null,"auth":null}"#;
        let d = parse_data(data).expect("parses");
        assert_eq!(d.description, Some(Some("web DB".into())));
        assert_eq!(d.data.expect("data")["port"], "5432");
        // A deleted current version: 404 with this body.
        let gone = br#"{"request_id":"e01e3fe5-47af-fe73-0d36-b1546df33ae5","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":null,"metadata":{"created_time":"2026-12-02T15:13:08.060187691Z","custom_metadata":null,"deletion_time":"2026-12-02T15:13:08.166550727Z","destroyed":false,"version":1}},"wrap_info":null,"warnings":null,"auth":null}"#;
        assert_eq!(parse_data(gone).expect("parses").data, None);
        let meta = br#"{"request_id":"54f9dde7-86a7-dbb2-8976-bcde4fdc1d06","lease_id":"","renewable":false,"lease_duration":0,"data":{"cas_required":false,"created_time":"2026-12-02T15:13:07.721870874Z","current_metadata_version":1,"current_version":1,"custom_metadata":{"description":"web DB"},"delete_version_after":"0s","max_versions":0,"metadata_cas_required":false,"oldest_version":0,"updated_time":"2026-12-02T15:13:07.852291556Z","versions":{"1":{"created_time":"2026-12-02T15:13:07.721870874Z","deletion_time":"","destroyed":false}}},"wrap_info":null,"warnings":null,"auth":null}"#;
        assert_eq!(parse_metadata(meta).as_deref(), Some("web DB"));
        assert_eq!(
            status_reason("LIST secret/", 404, br#"{"errors":[]}"#),
            "LIST secret/ → 404"
        );
        assert_eq!(
            status_reason("LIST secret/", 403, br#"{"errors":["permission denied"]}"#),
            "OpenBao refused the token (403): LIST secret/"
        );
    }

    #[test]
    fn a_mount_is_discovered_read_and_retired() {
        let mut fake = Fake::new(&[
            (
                "apps/web",
                serde_json::json!({"db_password": "pw", "port": 5432}),
            ),
            ("apps/api/keys", serde_json::json!({"signing": "sk"})),
            ("top", serde_json::json!({"token": "t"})),
        ]);
        fake.descriptions
            .insert("top".into(), "the top token".into());
        let c = cfg(&[("delete", "true")]);
        let found = fake.discover(&c).expect("discovers");
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        assert_eq!(
            ids(&found.items),
            [
                "apps/api/keys#signing",
                "apps/web#db_password",
                "apps/web#port",
                "top#token"
            ]
        );
        let web = &found.items[1];
        assert_eq!(web.target, "openbao:secret/apps.web.db_password");
        assert_eq!(web.unit, "apps/web@1", "delete=true: the version imported");
        assert_eq!(web.description, "OpenBao secret/apps/web key db_password");
        assert_eq!(found.items[3].description, "the top token");
        assert_eq!(
            found.items[0].target,
            "openbao:secret/apps.api.keys.signing"
        );
        for item in &found.items {
            assert!(migrate::valid_target(&item.target), "{}", item.target);
        }
        // One list per folder and one data read per secret.
        assert_eq!(fake.seen.len(), 3 + 3, "{:#?}", fake.seen);

        let mut net = |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b);
        assert_eq!(
            read_with(&c, "apps/web#db_password", &mut net).as_deref(),
            Ok(&b"pw"[..])
        );
        assert_eq!(
            read_with(&c, "apps/web#port", &mut net).as_deref(),
            Ok(&b"5432"[..])
        );
        assert!(read_with(&c, "apps/web#nope", &mut net).is_err());
        assert!(read_with(&c, "apps/../x#k", &mut net).is_err());
        assert!(read_with(&c, "nothing", &mut net).is_err());
        assert!(read_with(&c, "gone#k", &mut net).is_err());

        retire_with(&c, "apps/web@1", &mut net).expect("destroys");
        retire_with(&c, "apps/web@1", &mut net).expect("idempotent");
        assert!(retire_with(&c, "../x@1", &mut net).is_err());
        assert!(retire_with(&c, "apps/web", &mut net).is_err(), "no version");
        let after = fake.discover(&c).expect("discovers");
        assert_eq!(ids(&after.items), ["apps/api/keys#signing", "top#token"]);

        // Without delete, retiring leaves the source alone and sends nothing.
        let keep = cfg(&[]);
        let before = fake.seen.len();
        retire_with(
            &keep,
            "top",
            &mut |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b),
        )
        .expect("no-op");
        assert_eq!(fake.seen.len(), before);
        assert!(fake.secrets.contains_key("top"));
    }

    #[test]
    fn older_servers_cost_a_metadata_read() {
        let mut fake = Fake::new(&[("a", serde_json::json!({"k": "v"}))]);
        fake.custom_in_data = false;
        fake.descriptions.insert("a".into(), "from metadata".into());
        let found = fake.discover(&cfg(&[])).expect("discovers");
        assert_eq!(found.items[0].description, "from metadata");
        assert_eq!(fake.seen.len(), 3);
        assert!(fake.seen[2].starts_with("GET http://127.0.0.1:8200/v1/secret/metadata/a"));
    }

    #[test]
    fn the_path_option_names_a_folder_or_a_secret() {
        let mut fake = Fake::new(&[
            ("apps/web", serde_json::json!({"k": "v"})),
            ("other", serde_json::json!({"k": "v"})),
        ]);
        let found = fake.discover(&cfg(&[("path", "apps")])).expect("discovers");
        assert_eq!(ids(&found.items), ["apps/web#k"]);
        let found = fake
            .discover(&cfg(&[("path", "other")]))
            .expect("discovers");
        assert_eq!(ids(&found.items), ["other#k"]);
        let found = fake.discover(&cfg(&[("path", "none")])).expect("discovers");
        assert!(found.items.is_empty());
        assert_eq!(problem_ids(&found.problems), ["none"]);
    }

    #[test]
    fn an_empty_mount_is_an_empty_discovery() {
        let mut fake = Fake::new(&[]);
        let found = fake.discover(&cfg(&[])).expect("empty");
        assert!(found.items.is_empty() && found.problems.is_empty());
    }

    #[test]
    fn refusals_and_failures() {
        let mut fake = Fake::new(&[("a", serde_json::json!({"k": "v"}))]);
        fake.force.insert("metadata/?list=true".into(), 403);
        let err = fake.discover(&cfg(&[])).expect_err("refused");
        assert!(
            matches!(&err, Error::Denied(m) if m.starts_with(REFUSED)),
            "{err:?}"
        );
        fake.force.clear();
        fake.force.insert("metadata/?list=true".into(), 500);
        assert!(
            matches!(fake.discover(&cfg(&[])), Err(Error::Upstream(m)) if m.contains("permission denied"))
        );

        // A subtree or a secret the token may not see is a problem.
        let mut fake = Fake::new(&[
            ("ok", serde_json::json!({"k": "v"})),
            ("private/x", serde_json::json!({"k": "v"})),
            ("secret1", serde_json::json!({"k": "v"})),
        ]);
        fake.force.insert("metadata/private/?list=true".into(), 403);
        fake.force.insert("data/secret1".into(), 403);
        let found = fake.discover(&cfg(&[])).expect("discovers");
        assert_eq!(ids(&found.items), ["ok#k"]);
        assert_eq!(problem_ids(&found.problems), ["private/", "secret1"]);
        assert!(found.problems[0].reason.starts_with(REFUSED));

        let c = cfg(&[("delete", "true")]);
        let mut net = |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b);
        assert!(read_with(&c, "secret1#k", &mut net)
            .expect_err("403")
            .contains(REFUSED));
        fake.force.insert("metadata/ok".into(), 403);
        let mut net = |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b);
        assert!(retire_with(&c, "ok@1", &mut net)
            .expect_err("403")
            .contains(REFUSED));

        // A host error other than a limit ends the discovery.
        let err = discover_with(
            &cfg(&[]),
            &mut |_: &str, _: &str, _: Option<&[u8]>, _: &Config| {
                Err(Error::Upstream("connection refused".into()))
            },
        );
        assert_eq!(
            err.err(),
            Some(Error::Upstream("connection refused".into()))
        );
    }

    #[test]
    fn delete_destroys_only_the_imported_version_and_older() {
        let mut fake = Fake::new(&[("apps/web", serde_json::json!({"k": "v2"}))]);
        fake.versions.insert("apps/web".into(), 2);
        let c = cfg(&[("delete", "true")]);
        let found = fake.discover(&c).expect("discovers");
        assert_eq!(found.items[0].unit, "apps/web@2");
        // Version 3 is written between the read and the retire.
        fake.versions.insert("apps/web".into(), 3);
        let mut net = |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b);
        retire_with(&c, "apps/web@2", &mut net).expect("retires");
        assert!(fake.secrets.contains_key("apps/web"), "the path stays");
        assert_eq!(fake.destroyed["apps/web"], [1, 2], "{:#?}", fake.seen);
        // Nothing newer: the path goes.
        let mut net = |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b);
        retire_with(&c, "apps/web@3", &mut net).expect("retires");
        assert!(!fake.secrets.contains_key("apps/web"));
        // Older than imported: written again after a delete; left alone.
        let mut fake = Fake::new(&[("x", serde_json::json!({"k": "v"}))]);
        let mut net = |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b);
        assert!(retire_with(&c, "x@5", &mut net).is_err());
        assert!(fake.secrets.contains_key("x"));
    }

    #[test]
    fn bad_keys_and_values_are_problems() {
        let big = "v".repeat(migrate::MAX_VALUE + 1);
        let mut fake = Fake::new(&[
            (
                "app",
                serde_json::json!({"ok": "v", "empty": "", "big": big, "": "x", "ctl\u{1}": "x"}),
            ),
            ("dup.a/b", serde_json::json!({"k": "1"})),
            ("dup/a.b", serde_json::json!({"k": "2"})),
            ("empty", serde_json::json!({})),
            ("fine", serde_json::json!({"k": "v", "obj": {"a": [1]}})),
            ("_hidden", serde_json::json!({"k": "v"})),
        ]);
        fake.secrets.insert("deleted".into(), None);
        let found = fake.discover(&cfg(&[])).expect("discovers");
        assert_eq!(ids(&found.items), ["app#ok", "fine#k", "fine#obj"]);
        assert_eq!(
            problem_ids(&found.problems),
            [
                "_hidden#k",
                "app#",
                "app#big",
                "app#ctl\u{1}",
                "app#empty",
                "deleted",
                "empty",
                "dup.a/b#k",
                "dup/a.b#k",
            ]
        );
        for p in &found.problems {
            assert!(!p.reason.contains("vvvv"), "{p:?}");
        }
        let mut net = |m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b);
        assert_eq!(
            read_with(&cfg(&[]), "fine#obj", &mut net).as_deref(),
            Ok(&br#"{"a":[1]}"#[..])
        );
        // With delete=true, a path with a bad key waits whole.
        let found = fake
            .discover(&cfg(&[("delete", "true")]))
            .expect("discovers");
        assert_eq!(ids(&found.items), ["fine#k", "fine#obj"]);
        assert!(problem_ids(&found.problems).contains(&"app#ok"));
    }

    #[test]
    fn bad_listings_are_problems() {
        let mut fake = Fake::new(&[
            ("a#b", serde_json::json!({"k": "v"})),
            ("x/../y", serde_json::json!({"k": "v"})),
            ("good", serde_json::json!({"k": "v"})),
        ]);
        let found = fake.discover(&cfg(&[])).expect("discovers");
        assert_eq!(ids(&found.items), ["good#k"]);
        assert_eq!(problem_ids(&found.problems), ["a#b", "x/../"]);
    }

    #[test]
    fn depth_and_call_limits_stop_cleanly() {
        let deep = (0..40)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/");
        let mut fake = Fake::new(&[(&deep, serde_json::json!({"k": "v"}))]);
        let found = fake.discover(&cfg(&[])).expect("discovers");
        assert!(found.items.is_empty());
        assert_eq!(found.problems.len(), 1);
        assert!(found.problems[0].reason.contains("32 folders deep"));

        let mut fake = Fake::new(&[
            ("a", serde_json::json!({"k": "v"})),
            ("b", serde_json::json!({"k": "v"})),
            ("c", serde_json::json!({"k": "v"})),
        ]);
        fake.budget = Some(3);
        let found = fake.discover(&cfg(&[])).expect("partial");
        assert_eq!(ids(&found.items), ["a#k", "b#k"]);
        assert_eq!(problem_ids(&found.problems), ["c"]);
        assert!(found.problems[0].reason.contains("--option path="));
        assert_eq!(fake.seen.len(), 4);
    }

    #[test]
    fn reads_in_one_call_share_a_data_answer() {
        let mut fake = Fake::new(&[("a", serde_json::json!({"k": "v", "l": "w"}))]);
        let c = cfg(&[]);
        {
            let mut net =
                cached(|m: &str, u: &str, b: Option<&[u8]>, _: &Config| fake.answer(m, u, b));
            assert_eq!(read_with(&c, "a#k", &mut net).as_deref(), Ok(&b"v"[..]));
            assert_eq!(read_with(&c, "a#l", &mut net).as_deref(), Ok(&b"w"[..]));
        }
        assert_eq!(fake.seen.len(), 1);
        DATA.with(|d| d.borrow_mut().clear());
    }
}
