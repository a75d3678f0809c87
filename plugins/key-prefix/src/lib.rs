//! Migrator for bare keys with a known prefix (toolhive-style scopes): the
//! workload or registry is the key's suffix, so no list of workloads is
//! needed.
//!
//! | key | target |
//! |---|---|
//! | `BEARER_TOKEN_<W>` | `workload:<w>/BEARER_TOKEN` |
//! | `OAUTH_CLIENT_SECRET_<W>` | `workload:<w>/OAUTH_CLIENT_SECRET` |
//! | `OAUTH_CLIENT_ID_<W>` | `workload:<w>/OAUTH_CLIENT_ID` |
//! | `REGISTRY_OAUTH_<R>` | `registry:<r>/OAUTH_TOKEN` |
//! | `REGISTRY_PASSWORD_<R>` | `registry:<r>/PASSWORD` |
//!
//! `<w>` and `<r>` are the suffix lower-cased (`_` kept); an empty suffix,
//! or one that is no scope id, is a problem. Prefixes are matched exactly
//! (upper case); other keys are left alone.
//!
//! Two sources:
//!
//! - **Files** (`--source DIR`): option `file` (one file in the folder), or
//!   by default every `*.env` file (and `.env`) and every `*.json` file
//!   directly in the folder. A dotenv file has `KEY=VALUE` lines (`export `
//!   allowed, `#` comments, blank lines, values optionally in single or
//!   double quotes, `\n \r \t \" \\` escapes in double quotes, ` #` comments
//!   after unquoted values); a malformed line is a problem naming its line
//!   number only. A `.json` file is one flat object. Item id and unit are
//!   `<file>#<KEY>`; retiring rewrites the file without that key (a temp
//!   file `<file>.keyward-tmp` renamed over it, the file's permissions
//!   kept), after keeping the original once as `.<file>.migrated.bak`.
//! - **Keyward's own store** (no source): `plan-renames` moves
//!   `global/<KEY>` to its target; discovery finds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use keyward_plugin_sdk::migrate::{
    self, problem, Binding, Discovery, Item, MigratorInfo, Problem, RunConfig,
};
use keyward_plugin_sdk::{Error, Migrator};
use serde_json::Value;

/// The known prefixes: `(key prefix, scope kind, secret name)`.
const PREFIXES: [(&str, &str, &str); 5] = [
    ("BEARER_TOKEN_", "workload", "BEARER_TOKEN"),
    ("OAUTH_CLIENT_SECRET_", "workload", "OAUTH_CLIENT_SECRET"),
    ("OAUTH_CLIENT_ID_", "workload", "OAUTH_CLIENT_ID"),
    ("REGISTRY_OAUTH_", "registry", "OAUTH_TOKEN"),
    ("REGISTRY_PASSWORD_", "registry", "PASSWORD"),
];

/// Largest legacy file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

struct KeyPrefix;

impl Migrator for KeyPrefix {
    fn info() -> MigratorInfo {
        MigratorInfo {
            name: "key-prefix".into(),
            description: "prefixed bare keys (BEARER_TOKEN_<W>, OAUTH_CLIENT_SECRET_<W>, \
                          OAUTH_CLIENT_ID_<W>, REGISTRY_OAUTH_<R>, REGISTRY_PASSWORD_<R>) into \
                          workload:<w>/… and registry:<r>/…, from .env/.json files or the \
                          global scope"
                .into(),
        }
    }

    fn discover(run: &RunConfig) -> Result<Discovery, Error> {
        if run.source.is_none() {
            return Ok(Discovery {
                items: Vec::new(),
                problems: Vec::new(),
            });
        }
        let source = migrate::source_dir(run)?;
        discover_in(&source, migrate::option(run, "file"))
    }

    fn read(run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        let (file, key) = split_id(run, id)?;
        let path = migrate::inside(&source, file)?;
        let bytes = migrate::read_file(&path, file, MAX_FILE_BYTES)?;
        let entries = parse_file(file, &bytes).map_err(|p| p.reason)?;
        let mut values = entries.iter().filter(|e| e.key == key);
        match (values.next(), values.next()) {
            (Some(e), None) => match &e.value {
                Ok(v) => check_value(v)
                    .map(|()| v.as_bytes().to_vec())
                    .map_err(|r| format!("{id}: {r}")),
                Err(reason) => Err(format!("{id}: {reason}")),
            },
            (None, _) => Err(format!("{id}: no {key} in {file} (any more)")),
            (Some(_), Some(_)) => Err(format!("{id}: {key} is set more than once in {file}")),
        }
    }

    fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        let (file, key) = split_id(run, unit)?;
        let path = migrate::inside(&source, file)?;
        remove_key(&path, file, key)
    }

    fn plan_renames(_run: &RunConfig, existing: &[String]) -> Result<Vec<(String, String)>, Error> {
        let (pairs, warnings) = plan(existing);
        if cfg!(target_family = "wasm") {
            for w in &warnings {
                keyward_plugin_sdk::log::warn(w);
            }
        }
        Ok(pairs)
    }
}

keyward_plugin_sdk::export_migrator!(KeyPrefix);

/// What a key maps to.
#[derive(Debug, PartialEq, Eq)]
enum Mapping {
    /// No known prefix: left alone.
    Unknown,
    /// The target reference.
    Target(String),
    /// A known prefix with a suffix that makes no scope id: why.
    Invalid(String),
}

/// The target of `key`, per the prefix table.
fn map_key(key: &str) -> Mapping {
    for (prefix, kind, name) in PREFIXES {
        if let Some(suffix) = key.strip_prefix(prefix) {
            let id = suffix.to_ascii_lowercase();
            if id.is_empty() {
                return Mapping::Invalid(format!("{prefix}: nothing after the prefix"));
            }
            if !migrate::valid_name(&id) {
                return Mapping::Invalid(format!(
                    "{}: the part after {prefix} is no {kind} id (1-128 of a-z 0-9 _ . - \
                     starting with a letter or digit)",
                    shown(key)
                ));
            }
            return Mapping::Target(format!("{kind}:{id}/{name}"));
        }
    }
    Mapping::Unknown
}

/// The in-store plan: `(old, new)` for every reference of the global scope
/// (`global/KEY` or a bare `KEY`) with a known prefix, and warnings for the
/// ones left out (a bad suffix, a target that exists already or that two
/// references would move to).
fn plan(existing: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let normal = |r: &str| -> Option<String> {
        match r.split_once('/') {
            None => Some(r.to_owned()),
            Some(("global", name)) => Some(name.to_owned()),
            Some(_) => None,
        }
    };
    let present: BTreeSet<String> = existing
        .iter()
        .map(|r| match normal(r) {
            Some(name) => format!("global/{name}"),
            None => r.clone(),
        })
        .collect();
    let mut warnings = Vec::new();
    let mut seen = BTreeSet::new();
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order = Vec::new();
    for old in existing {
        let Some(name) = normal(old) else { continue };
        if !seen.insert(name.clone()) {
            continue;
        }
        match map_key(&name) {
            Mapping::Unknown => {}
            Mapping::Invalid(reason) => {
                warnings.push(format!("{} not moved: {reason}", shown(old)))
            }
            Mapping::Target(new) if present.contains(&new) => {
                warnings.push(format!("{} not moved: {new} exists already", shown(old)));
            }
            Mapping::Target(new) => {
                let olds = by_target.entry(new.clone()).or_default();
                if olds.is_empty() {
                    order.push(new);
                }
                olds.push(old.clone());
            }
        }
    }
    let mut pairs = Vec::new();
    for new in order {
        match by_target[&new].as_slice() {
            [old] => pairs.push((old.clone(), new)),
            olds => warnings.push(format!(
                "{} not moved: {new} is the target of {} references ({})",
                shown(&olds[0]),
                olds.len(),
                olds.join(", ")
            )),
        }
    }
    (pairs, warnings)
}

/// Discovery in `source`: the `file` option's file, or every candidate.
fn discover_in(source: &Path, file: Option<&str>) -> Result<Discovery, Error> {
    let files = match file {
        Some(f) => {
            let path = migrate::inside(source, f).map_err(|e| {
                Error::Invalid(format!(
                    "--option file: {e}; name a file inside the source folder"
                ))
            })?;
            if std::fs::symlink_metadata(path).is_err() {
                return Err(Error::Invalid(format!(
                    "{f}: not found in the source folder (--option file)"
                )));
            }
            vec![f.to_owned()]
        }
        None => candidates(source)
            .map_err(|e| Error::Invalid(format!("the source folder cannot be listed: {e}")))?,
    };
    let mut items = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let (mut found, mut bad) = discover_file(source, &file);
        items.append(&mut found);
        problems.append(&mut bad);
    }
    let (items, mut clashing) = migrate::refuse_duplicate_targets(items);
    problems.append(&mut clashing);
    Ok(Discovery { items, problems })
}

/// The files discovery reads by default: `.env`, `*.env` and `*.json`
/// directly in `source`, sorted; other dotfiles (retired copies among them)
/// are not.
fn candidates(source: &Path) -> Result<Vec<String>, std::io::Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let wanted = name == ".env"
            || (!name.starts_with('.') && (name.ends_with(".env") || name.ends_with(".json")));
        if wanted {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The items and problems of one file.
fn discover_file(source: &Path, file: &str) -> (Vec<Item>, Vec<Problem>) {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let bytes = match migrate::inside(source, file).and_then(|path| {
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "{file}: a symlink; retiring rewrites the file, so name the file it points to"
            ));
        }
        migrate::read_file(&path, file, MAX_FILE_BYTES)
    }) {
        Ok(bytes) => bytes,
        Err(reason) => {
            problems.push(problem(file, reason));
            return (items, problems);
        }
    };
    let entries = match parse_file(file, &bytes) {
        Ok(entries) => entries,
        Err(p) => {
            problems.push(p);
            return (items, problems);
        }
    };
    let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for e in &entries {
        lines.entry(e.key.as_str()).or_default().push(e.line);
    }
    let mut reported = BTreeSet::new();
    for e in &entries {
        let id = format!("{file}#{}", e.key);
        if e.key.is_empty() {
            // A malformed line: the reason has its number.
            if let Err(reason) = &e.value {
                problems.push(problem(file, reason.clone()));
            }
            continue;
        }
        let target = match map_key(&e.key) {
            Mapping::Unknown => continue,
            Mapping::Invalid(reason) => {
                problems.push(problem(&id, reason));
                continue;
            }
            Mapping::Target(t) => t,
        };
        let at = &lines[e.key.as_str()];
        if at.len() > 1 {
            if reported.insert(e.key.as_str()) {
                let at: Vec<String> = at.iter().map(usize::to_string).collect();
                problems.push(problem(
                    &id,
                    format!(
                        "{} is set more than once in {file} ({} {}); keep one",
                        e.key,
                        if file.ends_with(".json") {
                            "members"
                        } else {
                            "lines"
                        },
                        at.join(", ")
                    ),
                ));
            }
            continue;
        }
        match e
            .value
            .as_deref()
            .map_err(Clone::clone)
            .and_then(check_value)
        {
            Ok(()) => items.push(Item {
                id: id.clone(),
                target,
                description: format!("{} from {file}", e.key),
                binding: Binding::None,
                unit: id,
            }),
            Err(reason) => problems.push(problem(&id, format!("{}: {reason}", e.key))),
        }
    }
    (items, problems)
}

/// A value to migrate: not empty, at most 64 KiB. Reasons never quote it.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("empty value".into());
    }
    if value.len() > migrate::MAX_VALUE {
        return Err(format!(
            "{} bytes, more than the {} a secret may hold",
            value.len(),
            migrate::MAX_VALUE
        ));
    }
    Ok(())
}

/// `FILE#KEY` split, with FILE one this run's discovery reads.
fn split_id<'a>(run: &RunConfig, id: &'a str) -> Result<(&'a str, &'a str), String> {
    let (file, key) = id
        .rsplit_once('#')
        .ok_or_else(|| format!("{id}: not an id of this migrator (FILE#KEY)"))?;
    let covered = match migrate::option(run, "file") {
        Some(f) => f == file,
        None => {
            !file.contains('/')
                && (file == ".env"
                    || (!file.starts_with('.')
                        && (file.ends_with(".env") || file.ends_with(".json"))))
        }
    };
    if !covered || key.is_empty() {
        return Err(format!("{id}: not a key of a file this run reads"));
    }
    Ok((file, key))
}

/// One `KEY = value` of a file. A malformed dotenv line is an entry with an
/// empty key and the reason as its value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    /// The value, or why it cannot be read (never quoting it).
    value: Result<String, String>,
    /// The line (dotenv) or member number (JSON), from 1.
    line: usize,
    /// The bytes it spans in the file: the whole line with its line break
    /// (dotenv), or the member from its key to its value's end (JSON).
    span: (usize, usize),
}

/// The entries of `file` (dotenv unless it ends with `.json`), or the
/// problem that makes the whole file unreadable.
fn parse_file(file: &str, bytes: &[u8]) -> Result<Vec<Entry>, Problem> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| problem(file, format!("{file}: not UTF-8 text")))?;
    if file.ends_with(".json") {
        parse_json(text).map_err(|reason| problem(file, format!("{file}: {reason}")))
    } else {
        Ok(parse_dotenv(text))
    }
}

/// Dotenv lines. Blank and comment lines are not entries; malformed ones
/// are, with an empty key.
fn parse_dotenv(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while start < text.len() {
        number += 1;
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |i| start + i + 1);
        let raw = &text[start..end];
        let line = raw.trim_end_matches(['\n', '\r']);
        let line = if start == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        match parse_line(line) {
            Line::Nothing => {}
            Line::Assign(key, value) => out.push(Entry {
                key: key.to_owned(),
                value: Ok(value),
                line: number,
                span: (start, end),
            }),
            Line::Malformed(why) => out.push(Entry {
                key: String::new(),
                value: Err(format!("line {number}: {why}")),
                line: number,
                span: (start, end),
            }),
        }
        start = end;
    }
    out
}

/// One dotenv line, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// Blank or a comment.
    Nothing,
    /// `KEY=value`: the key and the value.
    Assign(&'a str, String),
    /// Why the line is not `KEY=VALUE`, without quoting it.
    Malformed(&'static str),
}

fn parse_line(line: &str) -> Line<'_> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Line::Nothing;
    }
    let line = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    };
    let Some((key, value)) = line.split_once('=') else {
        return Line::Malformed("not KEY=VALUE");
    };
    let key = key.trim_end();
    if !valid_key(key) {
        return Line::Malformed("the key is not a variable name (A-Z a-z 0-9 _ . -)");
    }
    let value = value.trim_start();
    let parsed = match value.as_bytes().first() {
        Some(b'"') => double_quoted(&value[1..]),
        Some(b'\'') => match value[1..].split_once('\'') {
            Some((inner, rest)) => after_quote(rest).map(|()| inner.to_owned()),
            None => Err("a single quote that does not close on its line"),
        },
        _ => {
            // An unquoted value ends at ` #` (a comment).
            let cut = value
                .char_indices()
                .find(|&(i, c)| c == '#' && i > 0 && value[..i].ends_with([' ', '\t']))
                .map_or(value, |(i, _)| &value[..i]);
            Ok(cut.trim_end().to_owned())
        }
    };
    match parsed {
        Ok(v) => Line::Assign(key, v),
        Err(why) => Line::Malformed(why),
    }
}

/// The value of a double-quoted string whose opening quote is gone.
fn double_quoted(text: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return after_quote(&text[i + 1..]).map(|()| out),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("a double quote that does not close on its line (values spanning lines are not supported)")
}

/// What may follow a closing quote: blanks and a comment.
fn after_quote(rest: &str) -> Result<(), &'static str> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err("text after the closing quote")
    }
}

fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The members of a JSON object text. Values that are not strings are
/// entries whose value is an error (a problem only for a known key).
fn parse_json(text: &str) -> Result<Vec<Entry>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    if !doc.is_object() {
        return Err("not a JSON object of KEY: value".into());
    }
    let members = json_members(text).ok_or("not a JSON object of KEY: value")?;
    Ok(members
        .into_iter()
        .enumerate()
        .map(|(i, (key, span, value))| Entry {
            key,
            value: match value {
                Value::String(s) => Ok(s),
                _ => Err("not a string".into()),
            },
            line: i + 1,
            span,
        })
        .collect())
}

/// A member of a JSON object: key, span, value.
type Member = (String, (usize, usize), Value);

/// `(key, span from the key's quote to the value's end, value)` of each
/// member of the object `text` (already known to be valid JSON), so that a
/// member can be cut out without touching the rest of the file.
fn json_members(text: &str) -> Option<Vec<Member>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => return Some(out),
            b'"' => {}
            _ => return None,
        }
        let start = i;
        let key_end = skip_string(b, i)?;
        let key: String = serde_json::from_str(&text[start..key_end]).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = skip_value(b, value_start)?;
        let value: Value = serde_json::from_str(&text[value_start..value_end]).ok()?;
        out.push((key, (start, value_end), value));
        i = skip_ws(b, value_end);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The end (after the closing quote) of the string starting at `i`.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The end of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// `text` without every entry of `key`, or `None` if it has none.
fn without_key(file: &str, text: &str, key: &str) -> Result<Option<String>, String> {
    let mut text = text.to_owned();
    let mut changed = false;
    loop {
        let entries = parse_file(file, text.as_bytes()).map_err(|p| p.reason)?;
        let Some(pos) = entries.iter().position(|e| e.key == key) else {
            return Ok(changed.then_some(text));
        };
        let (start, end) = if file.ends_with(".json") {
            // The member, and the comma and blanks that tie it to a neighbour.
            match (
                entries.get(pos + 1),
                pos.checked_sub(1).map(|p| &entries[p]),
            ) {
                (Some(next), _) => (entries[pos].span.0, next.span.0),
                (None, Some(prev)) => (prev.span.1, entries[pos].span.1),
                (None, None) => entries[pos].span,
            }
        } else {
            entries[pos].span
        };
        text.replace_range(start..end, "");
        changed = true;
    }
}

/// Retires `key` of the file at `path` (`file` as shown): the file without
/// it replaces the file, the original having been kept once as
/// `.<file>.migrated.bak`. A key that is gone already is `Ok`.
fn remove_key(path: &Path, file: &str, key: &str) -> Result<(), String> {
    let bak = migrate::retired_path(path).ok_or_else(|| format!("{file}: not a path to a file"))?;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if std::fs::symlink_metadata(&bak).is_ok() {
                Ok(())
            } else {
                Err(format!("{file}: gone, and no {} either", bak.display()))
            };
        }
        Err(e) => return Err(format!("{file}: {e}")),
    };
    if meta.file_type().is_symlink() {
        return Err(format!("{file}: a symlink; not rewritten"));
    }
    let bytes = migrate::read_file(path, file, MAX_FILE_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("{file}: not UTF-8 text"))?;
    let Some(rewritten) = without_key(file, text, key)? else {
        return Ok(());
    };
    if std::fs::symlink_metadata(&bak).is_err() {
        keep_original(path, &bak, &bytes)
            .map_err(|e| format!("{file}: keeping the original: {e}"))?;
    }
    // Atomic and synced (file and folder): after a power loss the file is
    // the old one or the new one, and the host's "retired" mark, written
    // after this returns, is true. The host gives the new file the mode
    // and owner of the one it replaces (the sandbox has no chmod).
    migrate::replace_file(path, rewritten.as_bytes()).map_err(|e| format!("{file}: rewriting: {e}"))
}

/// Keeps the original as `bak`: a hard link where the file system has them
/// (the original bytes, mode and owner, atomically, since the rewrite
/// replaces the name instead of writing into it), else a copy written to a
/// temp file first, so a crash never leaves a half `.bak` behind. Synced
/// either way.
fn keep_original(path: &Path, bak: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::hard_link(path, bak).is_ok() {
        return migrate::sync_renamed(path, bak);
    }
    migrate::replace_file(bak, bytes)
}

/// A key or reference for a message: as it is when plain, else escaped and
/// cut short.
fn shown(text: &str) -> String {
    if text.len() <= 160 && text.chars().all(|c| c.is_ascii_graphic()) {
        return text.to_owned();
    }
    let cut: String = text.chars().take(64).collect();
    format!("{cut:?}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_plugin_sdk::testing::TempDir;

    fn ids(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    fn problem_ids(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.id.as_str()).collect()
    }

    fn target(key: &str) -> Mapping {
        map_key(key)
    }

    #[test]
    fn the_prefix_table() {
        let t = |s: &str| Mapping::Target(s.into());
        assert_eq!(
            target("BEARER_TOKEN_GITHUB"),
            t("workload:github/BEARER_TOKEN")
        );
        assert_eq!(
            target("BEARER_TOKEN_MY_API"),
            t("workload:my_api/BEARER_TOKEN")
        );
        assert_eq!(
            target("OAUTH_CLIENT_SECRET_Fetch"),
            t("workload:fetch/OAUTH_CLIENT_SECRET")
        );
        assert_eq!(
            target("OAUTH_CLIENT_ID_FETCH"),
            t("workload:fetch/OAUTH_CLIENT_ID")
        );
        assert_eq!(
            target("REGISTRY_OAUTH_GHCR"),
            t("registry:ghcr/OAUTH_TOKEN")
        );
        assert_eq!(
            target("REGISTRY_PASSWORD_DOCKER.IO"),
            t("registry:docker.io/PASSWORD")
        );
        for unknown in [
            "GITHUB_TOKEN",
            "BEARER_TOKEN",
            "bearer_token_x",
            "XBEARER_TOKEN_A",
            "",
        ] {
            assert_eq!(target(unknown), Mapping::Unknown, "{unknown}");
        }
        for bad in [
            "BEARER_TOKEN_".to_owned(),
            "BEARER_TOKEN__X".to_owned(),
            "REGISTRY_OAUTH_A B".to_owned(),
            "REGISTRY_PASSWORD_é".to_owned(),
            format!("BEARER_TOKEN_{}", "W".repeat(129)),
        ] {
            assert!(matches!(target(&bad), Mapping::Invalid(_)), "{bad}");
        }
        for (prefix, _, _) in PREFIXES {
            if let Mapping::Target(t) = target(&format!("{prefix}X")) {
                assert!(migrate::valid_target(&t), "{t}");
            }
        }
    }

    #[test]
    fn dotenv_lines() {
        let a = |k, v: &str| Line::Assign(k, v.to_owned());
        assert_eq!(parse_line("A=1"), a("A", "1"));
        assert_eq!(parse_line("  export  A = 1 "), a("A", "1"));
        assert_eq!(parse_line("A="), a("A", ""));
        assert_eq!(parse_line("A=x=y"), a("A", "x=y"));
        assert_eq!(parse_line("A=v # c"), a("A", "v"));
        assert_eq!(parse_line("A=v#not-a-comment"), a("A", "v#not-a-comment"));
        assert_eq!(
            parse_line(r#"A="q \"x\" \n # y" # c"#),
            a("A", "q \"x\" \n # y")
        );
        assert_eq!(parse_line(r"A='lit \n $x'"), a("A", r"lit \n $x"));
        assert_eq!(parse_line("export=1"), a("export", "1"));
        assert_eq!(parse_line(""), Line::Nothing);
        assert_eq!(parse_line("  # A=1"), Line::Nothing);
        for bad in [
            "A",
            "export A",
            "=1",
            "1A=x",
            "A B=x",
            "A=\"open",
            "A='open",
            "A=\"x\" y",
            "A=\"x\\",
            "-----BEGIN KEY-----",
        ] {
            assert!(matches!(parse_line(bad), Line::Malformed(_)), "{bad}");
        }
    }

    #[test]
    fn dotenv_files_keep_spans_and_line_numbers() {
        let text = "\u{feff}A=1\r\n\n# c\nB=2\nnot a line\nC=3";
        let entries = parse_dotenv(text);
        let got: Vec<(&str, usize)> = entries.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(got, [("A", 1), ("B", 4), ("", 5), ("C", 6)]);
        assert_eq!(entries[2].value, Err("line 5: not KEY=VALUE".into()));
        assert_eq!(&text[entries[1].span.0..entries[1].span.1], "B=2\n");
        assert_eq!(&text[entries[3].span.0..entries[3].span.1], "C=3");
    }

    #[test]
    fn json_members_are_cut_out_cleanly() {
        let text = "{\n  \"A\": \"1\",\n  \"N\": {\"x\": [1, \"}\"]},\n  \"B\": \"2\"\n}\n";
        let cut = |key: &str| without_key("f.json", text, key).expect("parses");
        assert_eq!(
            cut("A").as_deref(),
            Some("{\n  \"N\": {\"x\": [1, \"}\"]},\n  \"B\": \"2\"\n}\n")
        );
        assert_eq!(
            cut("B").as_deref(),
            Some("{\n  \"A\": \"1\",\n  \"N\": {\"x\": [1, \"}\"]}\n}\n")
        );
        assert_eq!(cut("Z"), None);
        assert_eq!(
            without_key("f.json", r#"{"A":"1"}"#, "A")
                .expect("ok")
                .as_deref(),
            Some("{}")
        );
        assert_eq!(
            without_key("f.json", r#"{"A":"1","A":"2","B":true}"#, "A")
                .expect("ok")
                .as_deref(),
            Some(r#"{"B":true}"#)
        );
        // Escaped keys are compared decoded.
        assert_eq!(
            without_key("f.json", r#"{"\u0041":"1", "B": "2"}"#, "A")
                .expect("ok")
                .as_deref(),
            Some(r#"{"B": "2"}"#)
        );
        for bad in ["[1]", "{", "", "\"x\"", "{\"a\":1} x"] {
            assert!(parse_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dotenv_file_is_discovered_read_and_retired() {
        let dir = TempDir::new("dotenv");
        let original = "# tokens\nexport BEARER_TOKEN_GITHUB=\"ghp 1\"\r\nOTHER=keep\n\
                        REGISTRY_PASSWORD_GHCR='pw'\nBEARER_TOKEN_GITHUB_ENT=x # note\n";
        dir.write("prod.env", original);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(dir.path().join("prod.env"), mode).expect("chmod");
        }
        let run = dir.run(&[]);
        let found = KeyPrefix::discover(&run).expect("discovers");
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        assert_eq!(
            ids(&found.items),
            [
                "prod.env#BEARER_TOKEN_GITHUB",
                "prod.env#REGISTRY_PASSWORD_GHCR",
                "prod.env#BEARER_TOKEN_GITHUB_ENT"
            ]
        );
        let first = &found.items[0];
        assert_eq!(first.target, "workload:github/BEARER_TOKEN");
        assert_eq!(first.unit, first.id);
        assert_eq!(first.description, "BEARER_TOKEN_GITHUB from prod.env");
        assert_eq!(found.items[2].target, "workload:github_ent/BEARER_TOKEN");

        let read = |id: &str| KeyPrefix::read(&run, id);
        assert_eq!(read("prod.env#BEARER_TOKEN_GITHUB").expect("ok"), b"ghp 1");
        assert_eq!(read("prod.env#REGISTRY_PASSWORD_GHCR").expect("ok"), b"pw");
        assert_eq!(read("prod.env#BEARER_TOKEN_GITHUB_ENT").expect("ok"), b"x");
        assert!(read("prod.env#MISSING").is_err());
        assert!(read("../prod.env#BEARER_TOKEN_GITHUB").is_err());
        assert!(read("sub/prod.env#BEARER_TOKEN_GITHUB").is_err());
        assert!(read("prod.env").is_err());

        KeyPrefix::retire(&run, "prod.env#BEARER_TOKEN_GITHUB").expect("retires");
        assert_eq!(
            dir.text("prod.env"),
            "# tokens\nOTHER=keep\nREGISTRY_PASSWORD_GHCR='pw'\nBEARER_TOKEN_GITHUB_ENT=x # note\n"
        );
        assert_eq!(dir.text(".prod.env.migrated.bak"), original);
        KeyPrefix::retire(&run, "prod.env#BEARER_TOKEN_GITHUB").expect("idempotent");
        KeyPrefix::retire(&run, "prod.env#BEARER_TOKEN_GITHUB_ENT").expect("retires");
        assert_eq!(
            dir.text("prod.env"),
            "# tokens\nOTHER=keep\nREGISTRY_PASSWORD_GHCR='pw'\n"
        );
        // The backup is the original, kept once.
        assert_eq!(dir.text(".prod.env.migrated.bak"), original);
        assert!(!dir.exists("prod.env.keyward-tmp"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["prod.env", ".prod.env.migrated.bak"] {
                let mode = std::fs::metadata(dir.path().join(f))
                    .expect("meta")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let again = KeyPrefix::discover(&run).expect("discovers");
        assert_eq!(ids(&again.items), ["prod.env#REGISTRY_PASSWORD_GHCR"]);
        // Retiring a file that is gone but was kept is done.
        std::fs::remove_file(dir.path().join("prod.env")).expect("rm");
        KeyPrefix::retire(&run, "prod.env#OTHER").expect("kept");
        assert!(KeyPrefix::retire(&run, "none.env#BEARER_TOKEN_X").is_err());
    }

    #[test]
    fn a_json_file_is_discovered_read_and_retired() {
        let dir = TempDir::new("json");
        dir.write(
            "secrets.json",
            "{\"BEARER_TOKEN_A\": \"a\", \"name\": {\"deep\": 1}, \"OAUTH_CLIENT_ID_A\": \"id\"}",
        );
        dir.write("package.json", "{\"name\": \"x\", \"version\": [1]}");
        let run = dir.run(&[]);
        let found = KeyPrefix::discover(&run).expect("discovers");
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        assert_eq!(
            ids(&found.items),
            [
                "secrets.json#BEARER_TOKEN_A",
                "secrets.json#OAUTH_CLIENT_ID_A"
            ]
        );
        assert_eq!(
            KeyPrefix::read(&run, "secrets.json#OAUTH_CLIENT_ID_A").expect("ok"),
            b"id"
        );
        KeyPrefix::retire(&run, "secrets.json#OAUTH_CLIENT_ID_A").expect("retires");
        assert_eq!(
            dir.text("secrets.json"),
            "{\"BEARER_TOKEN_A\": \"a\", \"name\": {\"deep\": 1}}"
        );
        KeyPrefix::retire(&run, "secrets.json#OAUTH_CLIENT_ID_A").expect("idempotent");
        assert!(serde_json::from_str::<Value>(&dir.text("secrets.json")).is_ok());
    }

    #[test]
    fn the_file_option_names_one_file() {
        let dir = TempDir::new("option");
        dir.write("vars.txt", "BEARER_TOKEN_A=1\n");
        dir.write("a.env", "BEARER_TOKEN_B=1\n");
        let run = dir.run(&[("file", "vars.txt")]);
        let found = KeyPrefix::discover(&run).expect("discovers");
        assert_eq!(ids(&found.items), ["vars.txt#BEARER_TOKEN_A"]);
        assert_eq!(
            KeyPrefix::read(&run, "vars.txt#BEARER_TOKEN_A").expect("ok"),
            b"1"
        );
        assert!(KeyPrefix::read(&run, "a.env#BEARER_TOKEN_B").is_err());
        assert!(KeyPrefix::discover(&dir.run(&[("file", "none.env")])).is_err());
        assert!(KeyPrefix::discover(&dir.run(&[("file", "/etc/passwd")])).is_err());
    }

    #[test]
    fn hostile_files_are_problems_without_values() {
        let dir = TempDir::new("hostile");
        dir.write("empty.env", "");
        dir.write("bin.env", [0xff, 0xfe, 0x00, b'=', 0x80]);
        dir.write("big.json", vec![b' '; MAX_FILE_BYTES as usize + 1]);
        dir.write("cut.json", "{\"BEARER_TOKEN_A\": \"s3cr3t");
        dir.write("list.json", "[\"BEARER_TOKEN_A\"]");
        dir.write("deep.json", "[".repeat(5000));
        dir.write(
            "types.json",
            r#"{"BEARER_TOKEN_N": 5, "BEARER_TOKEN_E": "", "OTHER": null}"#,
        );
        dir.write(
            "mixed.env",
            "BEARER_TOKEN_=s3cr3t\nBEARER_TOKEN_DUP=s3cr3t1\nBEARER_TOKEN_DUP=s3cr3t2\n\
             -----BEGIN s3cr3t=-----\nREGISTRY_OAUTH_OK=\"s3cr3t\nBEARER_TOKEN_EMPTY=\n\
             REGISTRY_OAUTH_Z=fine\n",
        );
        dir.write("casing.env", "BEARER_TOKEN_GH=1\nBEARER_TOKEN_gh=2\n");
        std::fs::create_dir_all(dir.path().join("folder.env")).expect("mkdir");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("casing.env"), dir.path().join("link.env"))
            .expect("ln");
        let found = KeyPrefix::discover(&dir.run(&[])).expect("discovers");
        assert_eq!(ids(&found.items), ["mixed.env#REGISTRY_OAUTH_Z"]);
        let mut want = vec!["big.json", "bin.env", "cut.json", "deep.json", "empty.env"];
        if cfg!(unix) {
            want.push("link.env");
        }
        want.extend([
            "list.json",
            "mixed.env#BEARER_TOKEN_",
            "mixed.env#BEARER_TOKEN_DUP",
            "mixed.env",
            "mixed.env",
            "mixed.env#BEARER_TOKEN_EMPTY",
            "types.json#BEARER_TOKEN_N",
            "types.json#BEARER_TOKEN_E",
            "casing.env#BEARER_TOKEN_GH",
            "casing.env#BEARER_TOKEN_gh",
        ]);
        assert_eq!(problem_ids(&found.problems), want);
        assert!(found.problems[want.len() - 7]
            .reason
            .starts_with("line 4: the key"));
        assert!(found.problems[want.len() - 6]
            .reason
            .starts_with("line 5: a double quote"));
        for p in &found.problems {
            assert!(!p.reason.contains("s3cr3t"), "{p:?}");
        }
        // A malformed file is never rewritten by a retire either.
        assert!(KeyPrefix::retire(&dir.run(&[]), "cut.json#BEARER_TOKEN_A").is_err());
    }

    #[test]
    fn without_a_source_nothing_is_discovered() {
        let run = RunConfig {
            source: None,
            options: Vec::new(),
        };
        let found = KeyPrefix::discover(&run).expect("empty");
        assert!(found.items.is_empty() && found.problems.is_empty());
        let url = RunConfig {
            source: Some("https://example.org".into()),
            options: Vec::new(),
        };
        assert!(KeyPrefix::discover(&url).is_err());
    }

    #[test]
    fn renames_in_the_store() {
        let existing: Vec<String> = [
            "global/BEARER_TOKEN_GITHUB",
            "BEARER_TOKEN_GITLAB",
            "global/OTHER",
            "workload:x/BEARER_TOKEN_X",
            "global/REGISTRY_PASSWORD_",
            "global/OAUTH_CLIENT_ID_A",
            "global/OAUTH_CLIENT_ID_a",
            "global/REGISTRY_OAUTH_TAKEN",
            "registry:taken/OAUTH_TOKEN",
            "global/BEARER_TOKEN_GITHUB",
        ]
        .map(String::from)
        .to_vec();
        let (pairs, warnings) = plan(&existing);
        assert_eq!(
            pairs,
            [
                (
                    "global/BEARER_TOKEN_GITHUB".to_owned(),
                    "workload:github/BEARER_TOKEN".to_owned()
                ),
                (
                    "BEARER_TOKEN_GITLAB".to_owned(),
                    "workload:gitlab/BEARER_TOKEN".to_owned()
                ),
            ]
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("REGISTRY_PASSWORD_"));
        assert!(warnings[1].contains("exists already"));
        assert!(warnings[2].contains("2 references"));
        let run = RunConfig {
            source: None,
            options: Vec::new(),
        };
        assert_eq!(
            KeyPrefix::plan_renames(&run, &existing[..2]).expect("plans"),
            pairs
        );
    }
}
