//! `git-credentials`, the migrator of examples/python-plugin: built from
//! source with componentize-py by the example's own build script, dropped
//! into a `--plugins-dir` and run by the real binary over a
//! `.git-credentials` file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{code, text, Kw};

const PLUGIN: &str = "git-credentials";
const FILE: &str = ".git-credentials";
const BAK: &str = ".git-credentials.migrated.bak";
const PLAIN: &str = "ghp_plainToken0123456789";
/// `p@ss/w:rd%+x`, percent-encoded as git writes it.
const ENCODED: &str = "p%40ss%2Fw%3Ard%25%2Bx";
const DECODED: &str = "p@ss/w:rd%+x";

fn good_lines() -> String {
    format!(
        "https://alice:{PLAIN}@GitHub.com\n\
         https://bob%20b:{ENCODED}@git.example.org:8443/team/repo.git\n"
    )
}

/// Builds the example (a no-op when it is up to date) and puts the
/// migrator's wasm and manifest into a plugins folder of their own.
fn plugins_dir(kw: &Kw) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let status = Command::new(root.join("examples/python-plugin/build"))
        .status()
        .expect("run examples/python-plugin/build");
    assert!(status.success(), "building the Python plugins failed");
    let built = root.join("target/python-plugin");
    let dir = kw.dir.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir plugins");
    for ext in ["wasm", "toml"] {
        std::fs::copy(
            built.join(format!("{PLUGIN}.{ext}")),
            dir.join(format!("{PLUGIN}.{ext}")),
        )
        .expect("copy the built migrator");
    }
    dir
}

fn get(kw: &Kw, scope: &str) -> Option<String> {
    let out = kw.run(
        &["secret", "get", "TOKEN", "--scope", scope, "--reason", "r"],
        b"",
    );
    out.status
        .success()
        .then(|| text(&out.stdout).trim_end().to_owned())
}

/// `migrate ARGS` with the plugins folder; the output, and stdout.
fn migrate(kw: &Kw, plugins: &Path, args: &[&str]) -> (Output, String) {
    let mut all = vec![
        "--plugins-dir",
        plugins.to_str().expect("utf-8 path"),
        "migrate",
    ];
    all.extend_from_slice(args);
    let out = kw.run(&all, b"");
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains(PLAIN) && !stdout.contains(DECODED) && !stdout.contains(ENCODED),
        "a token on the screen: {stdout}"
    );
    (out, stdout)
}

fn line<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no line for {id}: {stdout}"))
}

#[test]
fn a_python_migrator_imports_git_credentials_and_keeps_a_file_with_a_bad_line() {
    let kw = Kw::new();
    let plugins = plugins_dir(&kw);
    let src = kw.dir.path().join("legacy");
    std::fs::create_dir_all(&src).expect("mkdir source");
    let file = src.join(FILE);
    // Line 2 has no scheme (and is what a careless paste of a token looks like).
    let with_bad = format!(
        "https://alice:{PLAIN}@GitHub.com\n\
         {PLAIN}\n\
         https://bob%20b:{ENCODED}@git.example.org:8443/team/repo.git\n"
    );
    std::fs::write(&file, &with_bad).expect("write");
    let src_s = src.to_str().expect("utf-8 path");

    let (out, listed) = migrate(&kw, &plugins, &["list"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        listed.contains(PLUGIN) && listed.contains("never run"),
        "{listed}"
    );

    // The plan changes nothing.
    let (out, plan) = migrate(&kw, &plugins, &["plan", PLUGIN, "--source", src_s]);
    assert!(plan.contains("would migrate"), "{plan}");
    assert_eq!(code(&out), 1, "a problem is a failure even in a plan");
    assert_eq!(get(&kw, "git_host:github.com"), None);

    // Both good lines are written; the bad one is FAILED, by line number;
    // the host would retire the file anyway (a problem is not an item of a
    // unit), so the plugin's retire refuses while the file has a bad line.
    let (out, first) = migrate(&kw, &plugins, &["run", PLUGIN, "--source", src_s]);
    assert_eq!(code(&out), 1, "{first}{}", text(&out.stderr));
    assert!(
        first.contains("git-credentials: 2 migrated, 0 skipped, 1 failed"),
        "{first}"
    );
    let bad = line(&first, ".git-credentials:2");
    assert!(bad.contains("FAILED: line 2: no scheme"), "{bad}");
    for (id, target) in [
        (".git-credentials#github.com", "git_host:github.com/TOKEN"),
        (
            ".git-credentials#git.example.org_8443",
            "git_host:git.example.org_8443/TOKEN",
        ),
    ] {
        let l = line(&first, id);
        assert!(
            l.contains(target) && l.contains("written; retiring failed") && l.contains("kept"),
            "{l}"
        );
    }
    assert_eq!(get(&kw, "git_host:github.com").as_deref(), Some(PLAIN));
    assert_eq!(
        get(&kw, "git_host:git.example.org_8443").as_deref(),
        Some(DECODED),
        "the token is percent-decoded"
    );
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), with_bad);
    assert!(!src.join(BAK).exists());

    // The operator removes the bad line: the run retires the file, without
    // writing anything again.
    std::fs::write(&file, good_lines()).expect("write");
    let (out, second) = migrate(&kw, &plugins, &["run", PLUGIN, "--source", src_s]);
    assert_eq!(code(&out), 0, "{second}{}", text(&out.stderr));
    assert!(
        second.contains("git-credentials: 2 migrated, 0 skipped, 0 failed"),
        "{second}"
    );
    assert!(
        line(&second, ".git-credentials#github.com").contains("retired: written before"),
        "{second}"
    );
    assert!(!file.exists());
    assert_eq!(
        std::fs::read_to_string(src.join(BAK)).expect("the file is kept as .bak"),
        good_lines()
    );
    assert_eq!(get(&kw, "git_host:github.com").as_deref(), Some(PLAIN));

    // The same run again is a no-op; --again finds nothing left.
    let (out, again) = migrate(&kw, &plugins, &["run", PLUGIN, "--source", src_s]);
    assert_eq!(code(&out), 0, "{again}");
    assert!(again.contains("finished before"), "{again}");
    let (out, forced) = migrate(
        &kw,
        &plugins,
        &["run", PLUGIN, "--source", src_s, "--again"],
    );
    assert_eq!(code(&out), 0, "{forced}{}", text(&out.stderr));
    assert!(
        forced.contains("git-credentials: 0 migrated, 0 skipped, 0 failed"),
        "{forced}"
    );

    // Every write is in the access log, which holds no value.
    let log = kw.ok(&["audit", "tail", "--json", "-n", "100"], b"");
    assert!(
        log.contains("migrated by git-credentials from .git-credentials#github.com"),
        "{log}"
    );
    assert!(!log.contains(PLAIN) && !log.contains(DECODED), "{log}");
}
