//! Templates rendered against the store: resolution order, all-or-nothing.

use keyward::resolve::Context;
use keyward::template::{render, RenderError};
use keyward::vault::VaultError;

use crate::support::{TestDb, TestKey};
use crate::{access, log_summary, name, scope};

crate::on_both_backends!(
    resolution_order_and_pinned_scopes,
    missing_secrets_are_all_named_and_nothing_renders
);

async fn resolution_order_and_pinned_scopes(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    for (s, v) in [
        ("global", "g"),
        ("agent_type:coder", "a"),
        ("instance:i-42", "i"),
    ] {
        vault
            .create(&scope(s), &name("TOKEN"), v.as_bytes(), "", &access())
            .await
            .expect("create");
    }
    let cases = [
        (vec![], "g"),
        (vec!["agent_type=coder"], "a"),
        (vec!["agent_type=coder", "instance=i-42"], "i"),
        (vec!["agent_type=other", "instance=i-42"], "i"),
        (vec!["agent_type=other", "instance=i-7"], "g"),
    ];
    for (pairs, expected) in cases {
        let ctx = Context::from_pairs(pairs.iter().copied()).expect("context");
        let out = render(&vault, "t=${SECRET:TOKEN}", &ctx, &access())
            .await
            .expect("render");
        assert_eq!(
            out.as_slice(),
            format!("t={expected}").as_bytes(),
            "{pairs:?}"
        );
    }
    let ctx = Context::from_pairs(["instance=i-42"]).expect("context");
    let out = render(
        &vault,
        "${SECRET:global/TOKEN} ${SECRET:agent_type:coder/TOKEN} $${SECRET:TOKEN}",
        &ctx,
        &access(),
    )
    .await
    .expect("render");
    assert_eq!(out.as_slice(), b"g a ${SECRET:TOKEN}");
    let last = vault.log_tail(2).await.expect("tail");
    assert!(last
        .iter()
        .all(|r| r.action == "render" && r.outcome == "ok"));
    assert_eq!(last[0].scope, "global");
    assert_eq!(last[1].scope, "agent_type:coder");

    // Text without placeholders needs no store access and is unchanged.
    let before = vault.log_tail(1000).await.expect("tail").len();
    let plain = "no placeholders: ${HOME} $SECRET {SECRET:X}";
    let out = render(&vault, plain, &ctx, &access())
        .await
        .expect("render");
    assert_eq!(out.as_slice(), plain.as_bytes());
    assert_eq!(vault.log_tail(1000).await.expect("tail").len(), before);
}

async fn missing_secrets_are_all_named_and_nothing_renders(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    vault
        .create(
            &scope("global"),
            &name("HAVE"),
            b"present-value",
            "",
            &access(),
        )
        .await
        .expect("create");
    let err = render(
        &vault,
        "${SECRET:HAVE} ${SECRET:NOPE} ${SECRET:agent_type:x/ALSO_NOPE} ${SECRET:NOPE}",
        &Context::default(),
        &access(),
    )
    .await
    .expect_err("missing");
    match &err {
        RenderError::Vault(VaultError::Missing(m)) => {
            assert_eq!(m.missing, ["NOPE", "agent_type:x/ALSO_NOPE"]);
        }
        other => panic!("{other}"),
    }
    assert!(!err.to_string().contains("present-value"));
    let log = log_summary(&vault).await;
    let outcomes: Vec<&str> = log.iter().skip(1).map(|r| r.1.as_str()).collect();
    assert_eq!(outcomes, ["withheld", "missing", "missing"]);

    // Malformed text is refused before any lookup.
    let err = render(&vault, "a\n${SECRET:HAVE", &Context::default(), &access())
        .await
        .expect_err("bad");
    assert!(matches!(err, RenderError::Template(_)));
    assert!(err.to_string().starts_with("line 2, column 1"), "{err}");
    assert_eq!(log_summary(&vault).await.len(), log.len());
}
