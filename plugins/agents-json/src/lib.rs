//! Migrator for the deprecated `token_file` of `agents.json` (TOK-1).
//!
//! The source folder holds `agents.json` (option `file`, a path inside the
//! folder; default `agents.json`) in one of three shapes:
//!
//! ```json
//! {"agents": [{"name": "coder", "token_file": "tokens/coder"}]}
//! [{"name": "coder", "token_file": "tokens/coder"}]
//! {"coder": {"token_file": "tokens/coder"}}
//! ```
//!
//! (`{"agents": {"coder": {…}}}` is read as the map shape too.) Only entries
//! with a `token_file` produce items; everything else in the file is left
//! alone, and the file itself is never modified.
//!
//! | item field | value |
//! |---|---|
//! | id, unit | the token file's path relative to the source folder (`tokens/coder`) |
//! | target | `agent_type:<name>/FORGE_TOKEN` |
//! | binding | `agent-type-token(<name>)` |
//! | description | `token of agent <name> from agents.json token_file` |
//!
//! `token_file` is relative to the folder of `agents.json`; an absolute
//! path or one with `..` is a problem. Reading trims the file (at most
//! 64 KiB) and refuses anything that is not one printable token. Retiring
//! renames the token file to `.<file name>.migrated.bak` beside it; a token
//! file that is gone while its `.bak` exists was retired before and is not
//! discovered again.

use std::collections::HashMap;
use std::path::{Component, Path};

use keyward_plugin_sdk::migrate::{
    self, problem, quoted, Binding, Discovery, Item, MigratorInfo, Problem, RunConfig,
};
use keyward_plugin_sdk::{Error, Migrator};
use serde_json::{Map, Value};

/// The file read when no `file` option is given.
const DEFAULT_FILE: &str = "agents.json";

/// Largest `agents.json` read: far more than any real one.
const MAX_AGENTS_BYTES: u64 = 8 * 1024 * 1024;

/// The secret name every agent type's forge token has.
const TOKEN_NAME: &str = "FORGE_TOKEN";

/// An `agents.json` entry that names a token file, already checked: `name`
/// is a valid agent-type name and `path` is a clean relative path inside the
/// source folder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    path: String,
}

struct AgentsJson;

impl Migrator for AgentsJson {
    fn info() -> MigratorInfo {
        MigratorInfo {
            name: "agents-json".into(),
            description: "agent tokens named by the deprecated token_file of agents.json, \
                          as agent_type:<name>/FORGE_TOKEN"
                .into(),
        }
    }

    fn discover(run: &RunConfig) -> Result<Discovery, Error> {
        let source = migrate::source_dir(run)?;
        discover_in(&source, agents_file(run))
    }

    fn read(run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        let path = migrate::inside(&source, id)?;
        let bytes = migrate::read_file(&path, id, migrate::MAX_VALUE as u64)?;
        migrate::token_text(&bytes, id)
    }

    fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        let path = migrate::inside(&source, unit)?;
        if migrate::inside(&source, agents_file(run)).is_ok_and(|file| file == path) {
            return Err(format!("{unit}: the agents file itself is never retired"));
        }
        migrate::retire_file(&path, unit)
    }
}

keyward_plugin_sdk::export_migrator!(AgentsJson);

/// The `file` option, or `agents.json`.
fn agents_file(run: &RunConfig) -> &str {
    migrate::option(run, "file").unwrap_or(DEFAULT_FILE)
}

/// Discovery in the folder `source` (the guest's `/source`, or any folder
/// natively) for the agents file `file`, relative to it.
fn discover_in(source: &Path, file: &str) -> Result<Discovery, Error> {
    let path = migrate::inside(source, file).map_err(|e| {
        Error::Invalid(format!(
            "--option file: {e}; name a file inside the source folder"
        ))
    })?;
    if std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Err(Error::Invalid(format!(
            "{file}: not found in the source folder; name another with --option file=PATH"
        )));
    }
    let mut problems = Vec::new();
    let doc = match migrate::read_file(&path, file, MAX_AGENTS_BYTES).and_then(|bytes| {
        serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("{file}: not JSON ({e})"))
    }) {
        Ok(doc) => doc,
        Err(reason) => {
            problems.push(problem(file, reason));
            return Ok(Discovery {
                items: Vec::new(),
                problems,
            });
        }
    };
    let folder = folder_of(file);
    let (entries, mut entry_problems) = entries(&doc, file, &folder);
    problems.append(&mut entry_problems);

    let shown_file = Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file);
    let mut items = Vec::new();
    for entry in entries {
        match token_state(source, &entry.path) {
            TokenState::Present => items.push(item(&entry, shown_file)),
            TokenState::Retired => {}
            TokenState::Unusable(reason) => problems.push(problem(&entry.path, reason)),
        }
    }
    let (items, mut shared) = refuse_shared_files(items);
    problems.append(&mut shared);
    let (items, mut clashing) = migrate::refuse_duplicate_targets(items);
    problems.append(&mut clashing);
    Ok(Discovery { items, problems })
}

/// The item for a checked entry; `shown_file` names the agents file.
fn item(entry: &Entry, shown_file: &str) -> Item {
    Item {
        id: entry.path.clone(),
        target: format!("agent_type:{}/{TOKEN_NAME}", entry.name),
        description: format!("token of agent {} from {shown_file} token_file", entry.name),
        binding: Binding::AgentTypeToken(entry.name.clone()),
        unit: entry.path.clone(),
    }
}

/// Where a token file stands.
#[derive(Debug, PartialEq, Eq)]
enum TokenState {
    /// There and usable (read and checked, the value dropped again).
    Present,
    /// Gone, with its `.bak` beside it: retired by an earlier run.
    Retired,
    /// Why it cannot be migrated.
    Unusable(String),
}

fn token_state(source: &Path, relative: &str) -> TokenState {
    let path = match migrate::inside(source, relative) {
        Ok(path) => path,
        Err(reason) => return TokenState::Unusable(reason),
    };
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let retired = migrate::retired_path(&path)
                .is_some_and(|bak| std::fs::symlink_metadata(bak).is_ok());
            if retired {
                TokenState::Retired
            } else {
                TokenState::Unusable(format!("token_file {relative} not found"))
            }
        }
        _ => match migrate::read_file(&path, relative, migrate::MAX_VALUE as u64)
            .and_then(|bytes| migrate::token_text(&bytes, relative))
        {
            Ok(_) => TokenState::Present,
            Err(reason) => TokenState::Unusable(reason),
        },
    }
}

/// Items whose token file more than one agent names: one token cannot be
/// the token of two agent types by this migrator (ids must be unique), so
/// each is a problem. Entries repeated exactly (same agent, same file)
/// count once.
fn refuse_shared_files(items: Vec<Item>) -> (Vec<Item>, Vec<Problem>) {
    let mut names: HashMap<String, Vec<String>> = HashMap::new();
    let mut unique = Vec::new();
    for item in items {
        let agent = agent_of(&item);
        let seen = names.entry(item.id.clone()).or_default();
        if !seen.contains(&agent) {
            seen.push(agent);
            unique.push(item);
        }
    }
    let mut kept = Vec::new();
    let mut problems = Vec::new();
    let mut reported = Vec::new();
    for item in unique {
        let agents = &names[&item.id];
        if agents.len() == 1 {
            kept.push(item);
        } else if !reported.contains(&item.id) {
            problems.push(problem(
                &item.id,
                format!(
                    "token_file {} is named by more than one agent ({}); give each agent its own \
                     token file",
                    item.id,
                    agents.join(", ")
                ),
            ));
            reported.push(item.id);
        }
    }
    (kept, problems)
}

fn agent_of(item: &Item) -> String {
    match &item.binding {
        Binding::AgentTypeToken(name) => name.clone(),
        _ => String::new(),
    }
}

/// The folder of `file` (relative, `/`-separated; empty for the source
/// folder itself).
fn folder_of(file: &str) -> String {
    let mut parts: Vec<&str> = file.split('/').filter(|p| !p.is_empty()).collect();
    parts.pop();
    parts.join("/")
}

/// The entries of a parsed `agents.json` that name a token file, checked,
/// and the problems of those that name one but cannot be migrated. `file`
/// is the agents file as shown, `folder` its folder (for `token_file`).
fn entries(doc: &Value, file: &str, folder: &str) -> (Vec<Entry>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut take =
        |label: String, name: Option<&str>, fields: &Map<String, Value>| match checked_entry(
            name, fields, folder,
        ) {
            Ok(Some(entry)) => out.push(entry),
            Ok(None) => {}
            Err(reason) => problems.push(problem(&format!("{file}#{label}"), reason)),
        };
    match doc {
        Value::Array(list) => list_entries(list, &mut take),
        Value::Object(map) => match map.get("agents") {
            Some(Value::Array(list)) => list_entries(list, &mut take),
            Some(Value::Object(inner))
                if map.len() == 1 && inner.values().all(Value::is_object) =>
            {
                map_entries(inner, &mut take);
            }
            _ => map_entries(map, &mut take),
        },
        _ => problems.push(problem(
            file,
            format!("{file}: neither a list of agents nor a map of them"),
        )),
    }
    (out, problems)
}

fn list_entries(list: &[Value], take: &mut impl FnMut(String, Option<&str>, &Map<String, Value>)) {
    for (i, value) in list.iter().enumerate() {
        // Entries that are not objects hold no token_file: nothing to do.
        if let Value::Object(fields) = value {
            let name = fields.get("name").and_then(Value::as_str);
            let label = match name {
                Some(n) => quoted(n),
                None => format!("[{i}]"),
            };
            take(label, name, fields);
        }
    }
}

fn map_entries(
    map: &Map<String, Value>,
    take: &mut impl FnMut(String, Option<&str>, &Map<String, Value>),
) {
    for (name, value) in map {
        // A map may hold settings besides agents (`"version": 2`).
        if let Value::Object(fields) = value {
            take(quoted(name), Some(name), fields);
        }
    }
}

/// The entry for one agent object, `None` if it has no token file.
fn checked_entry(
    name: Option<&str>,
    fields: &Map<String, Value>,
    folder: &str,
) -> Result<Option<Entry>, String> {
    let token_file = match fields.get("token_file") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(t)) => t,
        Some(_) => return Err("token_file is not a string".into()),
    };
    let name = name.ok_or("an entry with a token_file but no name")?;
    if !migrate::valid_name(name) {
        return Err(format!(
            "agent name {} cannot be an agent type: use 1-128 of A-Z a-z 0-9 _ . - starting \
             with a letter or digit",
            quoted(name)
        ));
    }
    let path = token_path(folder, token_file)?;
    Ok(Some(Entry {
        name: name.to_owned(),
        path,
    }))
}

/// `token_file` resolved against `folder` (the agents file's folder) as a
/// clean `/`-separated path relative to the source folder: `./` parts are
/// dropped; an absolute path, `..` or an empty path is refused.
fn token_path(folder: &str, token_file: &str) -> Result<String, String> {
    const OUTSIDE: &str = "token_file must be a relative path inside the source folder";
    if token_file.chars().any(char::is_control) {
        return Err(format!("{OUTSIDE} (it holds control characters)"));
    }
    let mut parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
    let folder_len = parts.len();
    for component in Path::new(token_file).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().ok_or(OUTSIDE)?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{OUTSIDE}, not {}", quoted(token_file)));
            }
        }
    }
    if parts.len() == folder_len {
        return Err(format!("{OUTSIDE}, not {}", quoted(token_file)));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_plugin_sdk::testing::TempDir;

    fn parse(json: &str) -> (Vec<Entry>, Vec<Problem>) {
        entries(
            &serde_json::from_str(json).expect("test JSON"),
            "agents.json",
            "",
        )
    }

    fn entry(name: &str, path: &str) -> Entry {
        Entry {
            name: name.into(),
            path: path.into(),
        }
    }

    fn ids(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    fn problem_ids(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn all_three_shapes_are_read() {
        let want = vec![entry("coder", "tokens/coder"), entry("rev", "t/rev")];
        for json in [
            r#"{"agents":[{"name":"coder","token_file":"tokens/coder","model":"x"},
                          {"name":"rev","token_file":"./t/rev"}]}"#,
            r#"[{"name":"coder","token_file":"tokens/coder"},{"name":"rev","token_file":"t/rev"}]"#,
            r#"{"coder":{"token_file":"tokens/coder"},"rev":{"token_file":"t//rev"},"version":2}"#,
            r#"{"agents":{"coder":{"token_file":"tokens/coder"},"rev":{"token_file":"t/rev"}}}"#,
        ] {
            let (entries, problems) = parse(json);
            assert_eq!(entries, want, "{json}");
            assert!(problems.is_empty(), "{json}: {problems:?}");
        }
    }

    #[test]
    fn only_entries_with_a_token_file_count() {
        let (entries, problems) = parse(
            r#"{"agents":[{"name":"a"},{"name":"b","token_file":null},7,"x",
                          {"name":"c","token_file":"c"}]}"#,
        );
        assert_eq!(entries, [entry("c", "c")]);
        assert!(problems.is_empty());
        // An agent literally named "agents", in the map shape.
        let (entries, _) = parse(r#"{"agents":{"token_file":"t"}}"#);
        assert_eq!(entries, [entry("agents", "t")]);
    }

    #[test]
    fn bad_entries_are_problems() {
        let (entries, problems) = parse(
            r#"[{"token_file":"x"},{"name":"a b","token_file":"y"},{"name":"","token_file":"y"},
                {"name":"n","token_file":5},{"name":"abs","token_file":"/etc/passwd"},
                {"name":"up","token_file":"../outside"},{"name":"mid","token_file":"a/../../b"},
                {"name":"dot","token_file":"."},{"name":"empty","token_file":""},
                {"name":"ctl","token_file":"a\nb"},{"name":"_x","token_file":"z"},
                {"name":"ok","token_file":"ok"}]"#,
        );
        assert_eq!(entries, [entry("ok", "ok")]);
        assert_eq!(
            problem_ids(&problems),
            [
                "agents.json#[0]",
                "agents.json#\"a b\"",
                "agents.json#\"\"",
                "agents.json#n",
                "agents.json#abs",
                "agents.json#up",
                "agents.json#mid",
                "agents.json#dot",
                "agents.json#empty",
                "agents.json#ctl",
                "agents.json#\"_x\"",
            ]
        );
        for p in &problems[4..8] {
            assert!(
                p.reason
                    .starts_with("token_file must be a relative path inside the source folder"),
                "{p:?}"
            );
        }
        let long = "x".repeat(300);
        let (_, problems) = parse(&format!(r#"{{"{long}":{{"token_file":"t"}}}}"#));
        assert!(problems[0].id.len() < 100, "{:?}", problems[0]);
    }

    #[test]
    fn non_agent_documents_are_a_problem() {
        for json in ["5", "\"x\"", "null", "true"] {
            let (entries, problems) = parse(json);
            assert!(entries.is_empty());
            assert_eq!(problem_ids(&problems), ["agents.json"]);
        }
    }

    #[test]
    fn token_files_are_relative_to_the_agents_file() {
        assert_eq!(folder_of("agents.json"), "");
        assert_eq!(folder_of("conf/agents.json"), "conf");
        assert_eq!(
            token_path("conf", "tokens/a").as_deref(),
            Ok("conf/tokens/a")
        );
        assert!(token_path("conf", "../a").is_err());
        assert!(token_path("conf", "./").is_err());
    }

    #[test]
    fn a_folder_is_discovered_read_and_retired() {
        let dir = TempDir::new("flow");
        let agents = r#"{"agents":[{"name":"coder","token_file":"tokens/coder"},
                                   {"name":"reviewer","token_file":"tokens/reviewer"}]}"#;
        dir.write("agents.json", agents);
        dir.write("tokens/coder", "tok-coder\n");
        dir.write("tokens/reviewer", "  tok-rev  ");
        let run = dir.run(&[]);

        let found = AgentsJson::discover(&run).expect("discovers");
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        assert_eq!(ids(&found.items), ["tokens/coder", "tokens/reviewer"]);
        let coder = &found.items[0];
        assert_eq!(coder.target, "agent_type:coder/FORGE_TOKEN");
        assert_eq!(coder.unit, "tokens/coder");
        assert_eq!(coder.binding, Binding::AgentTypeToken("coder".into()));
        assert_eq!(
            coder.description,
            "token of agent coder from agents.json token_file"
        );
        for item in &found.items {
            assert!(migrate::valid_target(&item.target));
        }

        assert_eq!(
            AgentsJson::read(&run, "tokens/coder").expect("reads"),
            b"tok-coder"
        );
        assert_eq!(
            AgentsJson::read(&run, "tokens/reviewer").expect("reads"),
            b"tok-rev"
        );
        assert!(AgentsJson::read(&run, "../etc/passwd").is_err());

        AgentsJson::retire(&run, "tokens/coder").expect("retires");
        AgentsJson::retire(&run, "tokens/coder").expect("idempotent");
        assert!(!dir.exists("tokens/coder"));
        assert!(dir.exists("tokens/.coder.migrated.bak"));
        assert!(AgentsJson::retire(&run, "agents.json").is_err());
        assert!(AgentsJson::retire(&run, "tokens/nothing").is_err());

        let again = AgentsJson::discover(&run).expect("discovers");
        assert_eq!(ids(&again.items), ["tokens/reviewer"]);
        assert!(again.problems.is_empty(), "{:?}", again.problems);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("agents.json")).expect("still there"),
            agents
        );
    }

    #[test]
    fn the_file_option_moves_the_folder() {
        let dir = TempDir::new("option");
        dir.write("conf/team.json", r#"[{"name":"a","token_file":"t/a"}]"#);
        dir.write("conf/t/a", "x");
        let found = AgentsJson::discover(&dir.run(&[("file", "conf/team.json")])).expect("ok");
        assert_eq!(ids(&found.items), ["conf/t/a"]);
        assert_eq!(
            found.items[0].description,
            "token of agent a from team.json token_file"
        );
        assert!(AgentsJson::discover(&dir.run(&[("file", "../x.json")])).is_err());
        assert!(AgentsJson::discover(&dir.run(&[("file", "none.json")])).is_err());
    }

    #[test]
    fn unusable_token_files_are_problems_without_values() {
        let dir = TempDir::new("hostile");
        dir.write(
            "agents.json",
            r#"[{"name":"missing","token_file":"t/missing"},{"name":"empty","token_file":"t/empty"},
                {"name":"blank","token_file":"t/blank"},{"name":"bin","token_file":"t/bin"},
                {"name":"big","token_file":"t/big"},{"name":"two","token_file":"t/two"},
                {"name":"dir","token_file":"t"},{"name":"link","token_file":"t/link"}]"#,
        );
        dir.write("t/empty", "");
        dir.write("t/blank", " \n\t");
        dir.write("t/bin", [0xff, 0xfe, 0x00, 0x13]);
        dir.write("t/big", "a".repeat(migrate::MAX_VALUE + 1));
        dir.write("t/two", "s3cr3t-one s3cr3t-two");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("t/link"))
            .expect("link");
        let found = AgentsJson::discover(&dir.run(&[])).expect("discovers");
        assert!(found.items.is_empty(), "{:?}", found.items);
        let mut want = vec![
            "t/missing",
            "t/empty",
            "t/blank",
            "t/bin",
            "t/big",
            "t/two",
            "t",
        ];
        if cfg!(unix) {
            want.push("t/link");
        }
        assert_eq!(problem_ids(&found.problems), want);
        assert_eq!(found.problems[0].reason, "token_file t/missing not found");
        for p in &found.problems {
            assert!(!p.reason.contains("s3cr3t"), "{p:?}");
        }
    }

    #[test]
    fn malformed_agents_files_are_one_problem() {
        let dir = TempDir::new("malformed");
        let deep = "[".repeat(10_000);
        for bytes in [
            &b""[..],
            b"{\"agents\": [",
            b"\xff\xfe\x00garbage",
            deep.as_bytes(),
            b"{\"a\":1} trailing",
        ] {
            dir.write("agents.json", bytes);
            let found = AgentsJson::discover(&dir.run(&[])).expect("a problem, not an error");
            assert!(found.items.is_empty());
            assert_eq!(problem_ids(&found.problems), ["agents.json"]);
        }
        dir.write("agents.json", vec![b' '; MAX_AGENTS_BYTES as usize + 1]);
        let found = AgentsJson::discover(&dir.run(&[])).expect("a problem");
        assert!(
            found.problems[0].reason.contains("more than"),
            "{:?}",
            found.problems
        );
    }

    #[test]
    fn duplicates_are_problems() {
        let dir = TempDir::new("dups");
        dir.write(
            "agents.json",
            r#"[{"name":"a","token_file":"t/a1"},{"name":"a","token_file":"t/a2"},
                {"name":"b","token_file":"t/shared"},{"name":"c","token_file":"t/shared"},
                {"name":"d","token_file":"t/d"},{"name":"d","token_file":"./t/d"}]"#,
        );
        for f in ["t/a1", "t/a2", "t/shared", "t/d"] {
            dir.write(f, "tok");
        }
        let found = AgentsJson::discover(&dir.run(&[])).expect("discovers");
        // The exact repeat of d counts once.
        assert_eq!(ids(&found.items), ["t/d"]);
        assert_eq!(problem_ids(&found.problems), ["t/shared", "t/a1", "t/a2"]);
        assert!(found.problems[0].reason.contains("(b, c)"));
        assert!(found.problems[1]
            .reason
            .contains("agent_type:a/FORGE_TOKEN"));
    }

    #[test]
    fn no_source_folder_is_an_error() {
        let run = RunConfig {
            source: None,
            options: Vec::new(),
        };
        assert!(AgentsJson::discover(&run).is_err());
        assert!(AgentsJson::read(&run, "x").is_err());
        assert!(AgentsJson::retire(&run, "x").is_err());
    }
}
