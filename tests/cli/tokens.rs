//! `token create|list|revoke`, with hostile input.

use crate::{code, text, Kw};

#[test]
fn create_prints_the_token_once_and_list_never_shows_it() {
    let kw = Kw::new();
    let out = kw.run(
        &["token", "create", "--name", "ci", "--role", "resolver"],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim_end().to_owned();
    assert!(token.starts_with("kw_") && token.len() == 63, "{token:?}");
    assert_eq!(
        text(&out.stdout),
        format!("{token}\n"),
        "stdout holds the token alone"
    );
    assert!(text(&out.stderr).contains("shown once"));
    let id = &token[3..19];

    let table = kw.ok(&["token", "list"], b"");
    assert!(table.contains(id) && table.contains("resolver") && table.contains("ci"));
    let secret = &token[20..];
    let json = kw.ok(&["token", "list", "--json"], b"");
    for listing in [&table, &json] {
        assert!(!listing.contains(secret), "a listing shows the token");
    }
    let row: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("one line")).expect("json");
    assert_eq!(row["revoked_at"], serde_json::Value::Null);

    assert_eq!(
        kw.ok(&["token", "revoke", id], b""),
        format!("revoked token {id}\n")
    );
    let json = kw.ok(&["token", "list", "--json"], b"");
    let row: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    assert!(row["revoked_at"].is_i64(), "{row}");
    let again = kw.run(&["token", "revoke", id], b"");
    assert_eq!(code(&again), 1);
    assert!(text(&again.stderr).contains("no active token"));
}

#[test]
fn hostile_names_roles_and_ids_are_refused_and_add_nothing() {
    let kw = Kw::new();
    let long = "x".repeat(65);
    for (name, role, says) in [
        ("ok", "admin", "invalid role"),
        ("ok", "", "invalid role"),
        ("", "operator", "invalid token name"),
        ("a\u{7}b", "operator", "invalid token name"),
        (long.as_str(), "operator", "invalid token name"),
        (
            "x'; DROP TABLE api_token; --",
            "operator",
            "invalid token name",
        ),
    ] {
        let out = kw.run(&["token", "create", "--name", name, "--role", role], b"");
        assert_eq!(code(&out), 1, "{name:?} {role:?}");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
        assert!(text(&out.stdout).is_empty());
    }
    for ttl in [
        "0s",
        "-1d",
        "1.5h",
        "10y",
        "4000d",
        "d",
        "99999999999999999999d",
    ] {
        let flag = format!("--ttl={ttl}");
        let out = kw.run(
            &[
                "token", "create", "--name", "n", "--role", "resolver", &flag,
            ],
            b"",
        );
        assert_eq!(code(&out), 2, "{ttl:?}");
        assert!(text(&out.stderr).contains("--ttl"), "{}", text(&out.stderr));
        assert!(text(&out.stdout).is_empty());
    }
    for id in ["", "nope", "' OR 1=1 --", &"f".repeat(10_000)] {
        let out = kw.run(&["token", "revoke", id], b"");
        assert_eq!(code(&out), 1, "{id:.20}");
        assert!(text(&out.stderr).contains("no active token"));
    }
    assert_eq!(kw.ok(&["token", "list", "--json"], b""), "");
    let usage = kw.run(&["token", "create", "--name", "n"], b"");
    assert_eq!(code(&usage), 2, "a missing --role is a usage error");
}

#[test]
fn a_token_with_a_lifetime_shows_its_expiry() {
    let kw = Kw::new();
    let out = kw.run(
        &[
            "token", "create", "--name", "ci", "--role", "resolver", "--ttl", "12h",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("it expires"),
        "{}",
        text(&out.stderr)
    );
    let table = kw.ok(&["token", "list"], b"");
    assert!(
        table.lines().next().unwrap_or("").contains("EXPIRES"),
        "{table}"
    );
    let json = kw.ok(&["token", "list", "--json"], b"");
    let row: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    let lifetime = row["expires_at"].as_i64().expect("expires_at")
        - row["created_at"].as_i64().expect("created_at");
    assert_eq!(lifetime, 12 * 3600 * 1000);
}

#[test]
fn rotate_prints_a_new_value_once_and_refuses_bad_input() {
    let kw = Kw::new();
    let old = kw.ok(
        &["token", "create", "--name", "ci", "--role", "resolver"],
        b"",
    );
    let id = old.trim()[3..19].to_owned();
    let out = kw.run(&["token", "rotate", &id, "--grace", "10m"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new = text(&out.stdout);
    assert!(new.starts_with(&format!("kw_{id}_")) && new != old, "{new}");
    assert!(
        text(&out.stderr).contains("accepted until"),
        "{}",
        text(&out.stderr)
    );
    let out = kw.run(&["token", "rotate", &id], b"");
    assert!(
        text(&out.stderr).contains("refused from now on"),
        "{}",
        text(&out.stderr)
    );
    for (args, exit) in [
        (vec!["token", "rotate", "ffffffffffffffff"], 1),
        (vec!["token", "rotate", &id, "--grace=8d"], 2),
        (vec!["token", "rotate", &id, "--grace=-1s"], 2),
        (vec!["token", "rotate"], 2),
    ] {
        let out = kw.run(&args, b"");
        assert_eq!(code(&out), exit, "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).is_empty(), "{args:?}");
    }
}

#[test]
fn policies_are_given_with_flags_and_bad_ones_refused() {
    let kw = Kw::new();
    let out = kw.run(
        &[
            "token",
            "create",
            "--name",
            "coder-1",
            "--role",
            "resolver",
            "--agent-type",
            "coder",
            "--instance",
            "i-1",
            "--network",
            "10.0.0.0/8",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json = kw.ok(&["token", "list", "--json"], b"");
    let row: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    let policy: serde_json::Value =
        serde_json::from_str(row["policy"].as_str().expect("a policy")).expect("policy json");
    assert_eq!(
        policy["agent"],
        serde_json::json!({"agent_type": "coder", "instance": "i-1"})
    );
    assert_eq!(
        policy["resolve"],
        serde_json::json!(["instance:i-1/*", "agent_type:coder/*", "global/*"])
    );
    assert_eq!(
        policy["capabilities"],
        serde_json::json!(["render", "agent-token", "dispatch", "metadata"])
    );
    for (args, exit, says) in [
        (
            vec!["--can", "render,everything", "--resolve", "*/*"],
            1,
            "unknown capability",
        ),
        (vec!["--resolve", "no-slash"], 1, "invalid pattern"),
        (vec!["--can", "render"], 1, "--resolve"),
        (
            vec!["--resolve", "*/*", "--network", "10.0.0.0/99"],
            1,
            "prefix",
        ),
        (vec!["--agent-type", "bad name"], 1, "agent binding"),
        (vec!["--instance", "i-1"], 2, "--agent-type"),
    ] {
        let mut all = vec!["token", "create", "--name", "n", "--role", "resolver"];
        all.extend(args.iter().copied());
        let out = kw.run(&all, b"");
        assert_eq!(code(&out), exit, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).is_empty());
    }
    let out = kw.run(
        &[
            "token",
            "create",
            "--name",
            "op",
            "--role",
            "operator",
            "--resolve",
            "*/*",
        ],
        b"",
    );
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("only resolver tokens"),
        "{}",
        text(&out.stderr)
    );
}
