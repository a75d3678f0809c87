//! Master-key handling at the command line.

use crate::{code, text, Kw};

/// Every command that opens the store.
const STORE_COMMANDS: &[&[&str]] = &[
    &["secret", "list"],
    &["secret", "get", "X", "--reason", "r"],
    &["secret", "rm", "X"],
    &["secret", "rotate", "X"],
    &["render"],
    &["audit", "tail"],
    &["audit", "verify"],
    &["key", "rotate"],
    &["serve", "--listen", "127.0.0.1:0"],
];

#[test]
fn generate_prints_a_fresh_32_byte_key() {
    let kw = Kw::new();
    let a = kw.ok(&["key", "generate"], b"");
    let b = kw.ok(&["key", "generate"], b"");
    assert_ne!(a, b);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(a.trim())
        .expect("base64");
    assert_eq!(bytes.len(), 32);
}

#[test]
fn missing_malformed_and_short_keys_are_refused_by_every_store_command() {
    let kw = Kw::new();
    for (key, needle) in [
        (None, "is not set"),
        (Some(""), "is not set"),
        (Some("%%%not-base64%%%"), "not valid base64"),
        (Some("c2hvcnQ="), "decodes to 5 bytes"),
        (
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "decodes to 42 bytes",
        ),
    ] {
        for args in STORE_COMMANDS {
            let mut cmd = kw.cmd(args);
            match key {
                Some(k) => cmd.env("KEYWARD_MASTER_KEY", k),
                None => cmd.env_remove("KEYWARD_MASTER_KEY"),
            };
            let out = crate::run_with(cmd, b"");
            let err = text(&out.stderr);
            assert_eq!(code(&out), 78, "{args:?} with {key:?}: {err}");
            assert!(err.contains("KEYWARD_MASTER_KEY"), "{err}");
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(err.contains("keyward key generate"), "{err}");
            if let Some(k) = key.filter(|k| k.len() > 4) {
                assert!(!err.contains(k), "the key text is never echoed");
            }
        }
    }
    // Nothing was created by any of the refused commands.
    assert!(!kw.dir.path().join("keyward.db").exists());
}

#[test]
fn a_bad_previous_key_is_refused_too() {
    let kw = Kw::new();
    let mut cmd = kw.cmd(&["secret", "list"]);
    cmd.env("KEYWARD_MASTER_KEY_PREVIOUS", "abc");
    let out = crate::run_with(cmd, b"");
    assert_eq!(code(&out), 78);
    assert!(text(&out.stderr).contains("KEYWARD_MASTER_KEY_PREVIOUS"));
}

#[test]
fn a_different_key_is_refused_at_start() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "A"], b"value-a\n");
    let other = Kw {
        key: crate::support::TestKey::new(),
        dir: tempfile::tempdir().expect("dir"),
        database_url: None,
    };
    let mut cmd = kw.cmd(&["secret", "set", "B"]);
    cmd.env("KEYWARD_MASTER_KEY", other.key.base64());
    let out = crate::run_with(cmd, b"value-b");
    assert_eq!(code(&out), 78);
    assert!(text(&out.stderr).contains("does not open the store"));
    let list = kw.ok(&["secret", "list"], b"");
    assert!(list.contains("A") && !list.contains(" B "), "{list}");
}

/// While KEYWARD_MASTER_KEY_PREVIOUS holds the store's key, a mistyped
/// new key would open the canary through it and seal new values under the
/// typo. A new key must be adopted once (`key adopt` or `key rotate`);
/// any other new key is refused with exit 78 and writes nothing.
#[test]
fn a_mistyped_new_key_is_refused_while_the_previous_key_opens_the_store() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "A"], b"value-a");
    let new = crate::support::TestKey::new();
    let typo = crate::support::TestKey::new();
    let with = |key: &crate::support::TestKey, args: &[&str], stdin: &[u8]| {
        let mut cmd = kw.cmd(args);
        cmd.env("KEYWARD_MASTER_KEY", key.base64())
            .env("KEYWARD_MASTER_KEY_PREVIOUS", kw.key.base64());
        crate::run_with(cmd, stdin)
    };
    let out = with(&typo, &["secret", "set", "B"], b"value-b");
    assert_eq!(code(&out), 78, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("key adopt"),
        "{}",
        text(&out.stderr)
    );
    let list = kw.ok(&["secret", "list"], b"");
    assert!(!list.contains('B'), "nothing was written: {list}");

    // The store's own key has nothing to adopt.
    let out = kw.run(&["key", "adopt"], b"");
    assert!(
        text(&out.stdout).contains("already this store's key"),
        "{}",
        text(&out.stdout)
    );
    // Adopting the intended key lets it start...
    let out = with(&new, &["key", "adopt"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("adopted"),
        "{}",
        text(&out.stdout)
    );
    let out = with(&new, &["secret", "set", "B"], b"value-b");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // ...and the typo is refused still, naming the adopted key, even when
    // it asks to be adopted or tries to rotate.
    for args in [
        &["secret", "list"][..],
        &["key", "adopt"],
        &["key", "rotate"],
    ] {
        let out = with(&typo, args, b"");
        assert_eq!(code(&out), 78, "{args:?}: {}", text(&out.stderr));
    }
    let out = with(&new, &["key", "rotate"], b"");
    assert!(
        text(&out.stdout).contains("rotation complete"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // After the rotation the new key is the store's; a typo with the new
    // key as previous is refused in the same way.
    let mut cmd = kw.cmd(&["secret", "list"]);
    cmd.env("KEYWARD_MASTER_KEY", typo.base64())
        .env("KEYWARD_MASTER_KEY_PREVIOUS", new.base64());
    let out = crate::run_with(cmd, b"");
    assert_eq!(code(&out), 78, "{}", text(&out.stderr));
    let mut cmd = kw.cmd(&["secret", "get", "B", "--reason", "check"]);
    cmd.env("KEYWARD_MASTER_KEY", new.base64());
    let out = crate::run_with(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "value-b");
}

#[test]
fn rotation_from_the_command_line() {
    let kw = Kw::new();
    for i in 0..5 {
        kw.ok(
            &["secret", "set", &format!("R{i}")],
            format!("value-{i}").as_bytes(),
        );
    }
    let new = crate::support::TestKey::new();
    let rotate = |args: &[&str], previous: bool| {
        let mut cmd = kw.cmd(args);
        cmd.env("KEYWARD_MASTER_KEY", new.base64());
        if previous {
            cmd.env("KEYWARD_MASTER_KEY_PREVIOUS", kw.key.base64());
        }
        crate::run_with(cmd, b"")
    };
    let out = rotate(&["key", "rotate", "--max-rows", "2"], true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("re-sealed 2 secrets"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("run `keyward key rotate` again"));
    let out = rotate(&["key", "rotate"], true);
    assert!(
        text(&out.stdout).contains("rotation complete"),
        "{}",
        text(&out.stdout)
    );
    let out = rotate(
        &["secret", "get", "R3", "--reason", "after rotation"],
        false,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "value-3");
    // The original key no longer opens the store.
    let out = kw.run(&["secret", "list"], b"");
    assert_eq!(code(&out), 78);
}

#[test]
fn dev_mode_generates_a_local_key_with_a_loud_warning() {
    let kw = Kw::new();
    // A data folder that does not exist yet is created private.
    let data = kw.dir.path().join("data");
    let mut cmd = kw.cmd(&["--dev", "secret", "set", "D"]);
    cmd.env_remove("KEYWARD_MASTER_KEY")
        .env("KEYWARD_DATA_DIR", &data);
    let out = crate::run_with(cmd, b"dev-value");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("WARNING: DEVELOPMENT MODE") && err.contains("GENERATED"),
        "{err}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("keyward.db")), 0o600);
    let key_file = data.join("dev-master.key");
    assert!(key_file.exists());
    assert_eq!(mode(&key_file), 0o600);
    let mut cmd = kw.cmd(&["secret", "get", "D", "--reason", "dev", "--dev"]);
    cmd.env_remove("KEYWARD_MASTER_KEY")
        .env("KEYWARD_DATA_DIR", &data);
    let out = crate::run_with(cmd, b"");
    assert_eq!(text(&out.stdout), "dev-value");
    assert!(text(&out.stderr).contains("USING"));
}
