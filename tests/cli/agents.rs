//! `agent-type add|list|set-token|token|rm`, with hostile input.

use crate::{code, text, Kw};

const TOKEN: &str = "fjt_agent-token-value-0xD0C";

#[test]
fn an_agent_type_gets_a_token_that_only_token_prints() {
    let kw = Kw::new();
    let out = kw.ok(
        &[
            "agent-type",
            "add",
            "coder",
            "--forge",
            "forgejo",
            "--base-url",
            "https://codeberg.org",
            "--description",
            "the coding agent",
        ],
        b"",
    );
    assert!(out.contains("created agent type coder"), "{out}");
    // With --output json: the agent type as GET /agent-types/{name} shows it.
    let out = kw.ok(
        &[
            "agent-type",
            "add",
            "reviewer",
            "--forge",
            "forgejo",
            "--base-url",
            "https://codeberg.org",
            "--output",
            "json",
        ],
        b"",
    );
    let view: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (
            &view["name"],
            &view["forge"],
            &view["base_url"],
            &view["token"]
        ),
        (
            &serde_json::json!("reviewer"),
            &serde_json::json!("forgejo"),
            &serde_json::json!("https://codeberg.org"),
            &serde_json::Value::Null
        ),
        "{out}"
    );
    kw.ok(&["agent-type", "rm", "reviewer"], b"");
    let out = kw.ok(
        &["agent-type", "set-token", "coder"],
        format!("{TOKEN}\n").as_bytes(),
    );
    assert!(out.contains("agent_type:coder/FORGE_TOKEN"), "{out}");
    let list = kw.ok(&["agent-type", "list"], b"");
    let json = kw.ok(&["agent-type", "list", "--json"], b"");
    for listing in [&list, &json] {
        assert!(listing.contains("coder") && listing.contains("agent_type:coder/FORGE_TOKEN"));
        assert!(!listing.contains(TOKEN), "a listing shows the token");
    }
    let out = kw.ok(
        &[
            "agent-type",
            "token",
            "coder",
            "--reason",
            "write agent.env",
        ],
        b"",
    );
    assert_eq!(out, format!("{TOKEN}\n"));
    let log = kw.ok(&["audit", "tail", "--json"], b"");
    assert!(
        log.contains("write agent.env") && log.contains("agent_type:coder"),
        "{log}"
    );
    // An instance override, then the type goes (its token secret stays).
    kw.ok(
        &["agent-type", "set-token", "coder", "--instance", "i-7"],
        b"instance-token",
    );
    let out = kw.ok(
        &[
            "agent-type",
            "token",
            "coder",
            "--instance",
            "i-7",
            "--reason",
            "r",
        ],
        b"",
    );
    assert_eq!(out, "instance-token\n");
    kw.ok(&["agent-type", "rm", "coder"], b"");
    assert!(!kw.ok(&["agent-type", "list"], b"").contains("coder"));
    assert!(kw.ok(&["secret", "list"], b"").contains("FORGE_TOKEN"));
}

#[test]
fn hostile_agent_type_input_is_refused_and_adds_nothing() {
    let kw = Kw::new();
    let long = "x".repeat(300);
    for args in [
        vec![
            "agent-type",
            "add",
            "a/b",
            "--forge",
            "forgejo",
            "--base-url",
            "https://x.example",
        ],
        vec![
            "agent-type",
            "add",
            long.as_str(),
            "--forge",
            "forgejo",
            "--base-url",
            "https://x.example",
        ],
        vec![
            "agent-type",
            "add",
            "ok",
            "--forge",
            "Not A Plugin",
            "--base-url",
            "https://x.example",
        ],
        vec![
            "agent-type",
            "add",
            "ok",
            "--forge",
            "forgejo",
            "--base-url",
            "http://x.example",
        ],
        vec![
            "agent-type",
            "add",
            "ok",
            "--forge",
            "forgejo",
            "--base-url",
            "not a url",
        ],
        vec![
            "agent-type",
            "add",
            "ok",
            "--forge",
            "forgejo",
            "--base-url",
            "https://u:p@x.example",
        ],
    ] {
        let out = kw.run(&args, b"");
        assert_eq!(code(&out), 1, "{args:?}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).is_empty());
    }
    assert_eq!(kw.ok(&["agent-type", "list", "--json"], b""), "");
    for (args, stdin) in [
        (vec!["agent-type", "set-token", "ghost"], &b"t"[..]),
        (
            vec!["agent-type", "token", "ghost", "--reason", "r"],
            &b""[..],
        ),
        (vec!["agent-type", "rm", "ghost"], &b""[..]),
    ] {
        let out = kw.run(&args, stdin);
        assert_eq!(code(&out), 1, "{args:?}");
        assert!(text(&out.stderr).contains("ghost"), "{}", text(&out.stderr));
    }
    kw.ok(
        &[
            "agent-type",
            "add",
            "empty",
            "--forge",
            "forgejo",
            "--base-url",
            "https://x.example",
        ],
        b"",
    );
    let out = kw.run(&["agent-type", "set-token", "empty"], b"");
    assert_eq!(code(&out), 1, "an empty token is refused");
    let out = kw.run(&["agent-type", "token", "empty", "--reason", "r"], b"");
    assert!(
        text(&out.stderr).contains("no token"),
        "{}",
        text(&out.stderr)
    );
    let out = kw.run(
        &["agent-type", "token", "empty", "--reason", "bad\u{1}reason"],
        b"",
    );
    assert_eq!(code(&out), 1);
}
