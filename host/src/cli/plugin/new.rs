//! `keyward plugin new NAME --kind forge|migrator --lang rust|python|js`:
//! writes a plugin project that builds outside Keyward's repository — the
//! skeleton, a `build` script, a manifest whose `name` is the built file's,
//! and a README. The templates are the files under `templates/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};

use crate::runtime::manifest;

/// The arguments of `keyward plugin new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The plugin's name: 1-64 of a-z 0-9 - _, starting with a letter. It
    /// names the files (NAME.wasm, NAME.toml) and the accessor `plugin:NAME`.
    pub name: String,
    /// What it is: a forge adapter or a legacy-store migrator.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The language of the skeleton.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where to write the project; must not exist or be empty [default: ./NAME].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The kind of plugin, as in the manifest.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A forge adapter (world forge-adapter).
    Forge,
    /// A migrator of a legacy secret store (world migrator).
    Migrator,
}

/// The language of a skeleton.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the keyward-plugin-sdk crate.
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Js,
}

/// The Rust toolchain a Rust skeleton pins: the one the SDK is built with
/// (a test keeps it equal to the repository's rust-toolchain.toml).
pub const RUST_CHANNEL: &str = "1.95.0";
/// The componentize-py a Python skeleton installs (a test keeps it equal to
/// examples/python-plugin/build's).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The componentize-js a JavaScript skeleton installs (a test keeps it
/// equal to scripts/componentize-js's).
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// The WIT package, copied into Python and JavaScript projects (a Rust one
/// gets it inside the SDK crate).
const WIT: &str = include_str!("../../../../wit/plugin.wit");

/// Names Rust or cargo refuse for a package.
const RUST_RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "build",
    "const",
    "continue",
    "core",
    "crate",
    "deps",
    "do",
    "dyn",
    "else",
    "enum",
    "examples",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "incremental",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// One file of a project: its path inside the project, its text, and
/// whether it is a script to run.
#[derive(Debug)]
pub struct File {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Contents.
    pub text: String,
    /// Mode 0755 instead of 0644.
    pub executable: bool,
}

pub(super) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let files = project(&args.name, args.kind, args.lang)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    write_project(&dir, &files)?;
    println!(
        "wrote {} ({} {} plugin {}):",
        dir.display(),
        lang_name(args.lang),
        kind_name(args.kind),
        args.name
    );
    for f in &files {
        println!("  {}", f.path);
    }
    println!(
        "build it with {}/build, then copy dist/{name}.wasm and dist/{name}.toml into KEYWARD_PLUGINS_DIR",
        dir.display(),
        name = args.name
    );
    Ok(ExitCode::SUCCESS)
}

/// Refuses a name that cannot be a plugin's (or, for Rust, a package's).
pub fn check_name(name: &str, lang: Lang) -> anyhow::Result<()> {
    if !manifest::valid_name(name) {
        bail!(
            "plugin name {name:?}: use 1-64 of a-z 0-9 - _, starting with a letter \
             (it names NAME.wasm, NAME.toml and the accessor plugin:NAME)"
        );
    }
    if lang == Lang::Rust && RUST_RESERVED.contains(&name.replace('-', "_").as_str()) {
        bail!("plugin name {name:?}: Rust or cargo reserves it for itself; choose another");
    }
    Ok(())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Forge => "forge",
        Kind::Migrator => "migrator",
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
    }
}

/// The files of a new project, rendered.
pub fn project(name: &str, kind: Kind, lang: Lang) -> anyhow::Result<Vec<File>> {
    check_name(name, lang)?;
    let sdk_version = {
        let mut parts = env!("CARGO_PKG_VERSION").split('.');
        format!(
            "{}.{}",
            parts.next().unwrap_or("0"),
            parts.next().unwrap_or("1")
        )
    };
    let (world, kind_text, description, grants_note) = match kind {
        Kind::Forge => (
            "forge-adapter",
            "forge adapter",
            format!("Forge adapter {name}"),
            "a forge call gets its base URL's origin and its token (for use only) from the host, for that call",
        ),
        Kind::Migrator => (
            "migrator",
            "migrator",
            match lang {
                Lang::Js => "A JSON object over HTTP: NAME → <scope>/NAME".to_owned(),
                _ => "Files of a folder: NAME → <scope>/NAME".to_owned(),
            },
            "a run grants its --source (folder or URL origin) for that run only",
        ),
    };
    let (lang_text, build_needs, files_text) = match lang {
        Lang::Rust => (
            "Rust (the `keyward-plugin-sdk` crate)",
            "Needs rustup (the pinned toolchain and its `wasm32-wasip2` target come from `rust-toolchain.toml`) and `keyward` on `PATH` (or `KEYWARD=/path/to/keyward`).",
            "- `src/lib.rs`: the plugin; `cargo test` runs its unit tests natively.\n- `Cargo.toml`, `rust-toolchain.toml`: the crate (a `cdylib`) and its toolchain.",
        ),
        Lang::Python => (
            "Python (componentize-py)",
            "Needs python3 with venv (componentize-py is installed from PyPI into `.venv/` the first time; `COMPONENTIZE_PY=/path/to/componentize-py` uses another) and `keyward` on `PATH` (or `KEYWARD=…`).",
            "- `app.py`: the plugin. componentize-py snapshots it at build time; import every module at the top.\n- `keyward_forge.py` (forge adapters): the `unsupported` defaults and the status and host-error mapping, bundled with `app.py`.\n- `wit/plugin.wit`: the contract, `keyward:plugin@0.1.x`.",
        ),
        Lang::Js => (
            "JavaScript (componentize-js)",
            "Needs node and npm (componentize-js is installed from npm into `node_modules/` the first time; `COMPONENTIZE_JS=/path/to/componentize-js` uses another) and `keyward` on `PATH` (or `KEYWARD=…`).",
            "- `app.js`: the plugin (an ES module; no Node APIs at run time, HTTP goes through `keyward:plugin/outbound`).\n- `package.json`: pins componentize-js.\n- `wit/plugin.wit`: the contract, `keyward:plugin@0.1.x`.",
        ),
    };
    let try_it = match (kind, lang) {
        (Kind::Forge, _) => format!(
            "```sh\nkeyward agent-type add my-bot --forge {name} --base-url https://forge.example\nprintf '%s' \"$TOKEN\" | keyward agent-type set-token my-bot\nkeyward agent-type dispatch my-bot     # whoami through {name}\n```"
        ),
        (Kind::Migrator, Lang::Js) => format!(
            "```sh\nkeyward migrate plan {name} --source https://legacy.example/secrets.json\nkeyward migrate run {name} --source https://legacy.example/secrets.json --option scope=workload:web\n```"
        ),
        (Kind::Migrator, _) => format!(
            "```sh\nkeyward migrate plan {name} --source ./legacy     # changes nothing\nkeyward migrate run {name} --source ./legacy --option scope=workload:web\n```"
        ),
    };
    let vars: Vec<(&str, String)> = vec![
        ("name", name.to_owned()),
        ("crate", name.replace('-', "_")),
        ("kind", kind_name(kind).to_owned()),
        ("kind_text", kind_text.to_owned()),
        ("lang", lang_name(lang).to_owned()),
        ("lang_text", lang_text.to_owned()),
        ("world", world.to_owned()),
        ("description", description),
        ("grants_note", grants_note.to_owned()),
        ("memory_mib", "64".to_owned()),
        ("build_needs", build_needs.to_owned()),
        ("files", files_text.to_owned()),
        ("try_it", try_it),
        ("sdk_version", sdk_version),
        ("rust_channel", RUST_CHANNEL.to_owned()),
        (
            "componentize_py_version",
            COMPONENTIZE_PY_VERSION.to_owned(),
        ),
        (
            "componentize_js_version",
            COMPONENTIZE_JS_VERSION.to_owned(),
        ),
    ];
    let file = |path: &str, template: &str, executable: bool| -> anyhow::Result<File> {
        Ok(File {
            path: path.to_owned(),
            text: render(template, &vars).with_context(|| format!("template of {path}"))?,
            executable,
        })
    };
    let manifest_path = format!("{name}.toml");
    let mut files = vec![
        file("README.md", include_str!("templates/README.md"), false)?,
        file(
            &manifest_path,
            include_str!("templates/manifest.toml"),
            false,
        )?,
        file(".gitignore", include_str!("templates/gitignore"), false)?,
    ];
    match lang {
        Lang::Rust => {
            files.push(file(
                "Cargo.toml",
                include_str!("templates/rust/Cargo.toml"),
                false,
            )?);
            files.push(file(
                "rust-toolchain.toml",
                include_str!("templates/rust/rust-toolchain.toml"),
                false,
            )?);
            files.push(file("build", include_str!("templates/rust/build"), true)?);
            let lib = match kind {
                Kind::Forge => include_str!("templates/rust/forge.rs"),
                Kind::Migrator => include_str!("templates/rust/migrator.rs"),
            };
            files.push(file("src/lib.rs", lib, false)?);
        }
        Lang::Python => {
            files.push(file("build", include_str!("templates/python/build"), true)?);
            let app = match kind {
                Kind::Forge => include_str!("templates/python/forge.py"),
                Kind::Migrator => include_str!("templates/python/migrator.py"),
            };
            files.push(file("app.py", app, false)?);
            if kind == Kind::Forge {
                files.push(file(
                    "keyward_forge.py",
                    include_str!("templates/python/keyward_forge.py"),
                    false,
                )?);
            }
            files.push(File {
                path: "wit/plugin.wit".to_owned(),
                text: WIT.to_owned(),
                executable: false,
            });
        }
        Lang::Js => {
            files.push(file("build", include_str!("templates/js/build"), true)?);
            files.push(file(
                "package.json",
                include_str!("templates/js/package.json"),
                false,
            )?);
            let app = match kind {
                Kind::Forge => include_str!("templates/js/forge.js"),
                Kind::Migrator => include_str!("templates/js/migrator.js"),
            };
            files.push(file("app.js", app, false)?);
            files.push(File {
                path: "wit/plugin.wit".to_owned(),
                text: WIT.to_owned(),
                executable: false,
            });
        }
    }
    Ok(files)
}

/// `template` with every `{{key}}` replaced; a placeholder without a value
/// is an error (a template bug, caught by the unit tests).
fn render(template: &str, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("unclosed placeholder at {:?}", &rest[start..]))?;
        let key = &after[..end];
        let value = vars
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .with_context(|| format!("no value for placeholder {{{{{key}}}}}"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes `files` into `dir`, which must not exist or be an empty folder:
/// nothing of an author's is ever overwritten.
pub fn write_project(dir: &Path, files: &[File]) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => bail!(
            "{}: exists and is not a folder; choose another --dir",
            dir.display()
        ),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir)
                .with_context(|| format!("{}: cannot list it", dir.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{}: exists and is not empty; choose another --dir (nothing was written)",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create it", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create it", parent.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(if f.executable { 0o755 } else { 0o644 });
        }
        let mut out = options
            .open(&path)
            .with_context(|| format!("{}: cannot create it", path.display()))?;
        out.write_all(f.text.as_bytes())
            .with_context(|| format!("{}: cannot write it", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
