//! API tokens: shown once, stored as a hash, checked in constant time,
//! revocable; malformed and hostile tokens are refused the same way.

use keyward::auth::{AuthError, Grant, Role, Tokens};

use crate::support::{contains, TestDb, TestKey};

crate::on_both_backends!(
    a_token_authenticates_until_revoked,
    only_a_hash_of_the_token_is_stored,
    hostile_tokens_and_names_are_refused,
    an_expired_token_is_refused_like_a_revoked_one,
    a_rotated_token_keeps_its_id_and_the_old_value_lasts_its_grace,
);

/// Rotation: a new value for the same id, name, role and expiry; the old
/// value is accepted for the grace period only (none: refused at once),
/// also by a process that remembered it.
async fn a_rotated_token_keeps_its_id_and_the_old_value_lasts_its_grace(db: TestDb) {
    use std::time::Duration;
    let vault = db.open(&TestKey::new()).await;
    let tokens = Tokens::with_cache_ttl(vault.db().clone(), Duration::from_secs(60));
    let (row, old) = tokens
        .create_with(
            "agent",
            Role::Resolver,
            Grant {
                ttl: Some(Duration::from_secs(3600)),
                policy: None,
            },
        )
        .await
        .expect("create");
    tokens.authenticate(old.expose()).await.expect("old works");

    // With a grace period both values work until it ends.
    let (rotated, new, until) = tokens
        .rotate(&row.id, Duration::from_millis(1500))
        .await
        .expect("rotate");
    assert_eq!(
        (
            &rotated.id,
            &rotated.name,
            &rotated.role,
            rotated.expires_at
        ),
        (&row.id, &row.name, &row.role, row.expires_at)
    );
    assert!(new.expose().starts_with(&format!("kw_{}_", row.id)));
    assert_ne!(new.expose(), old.expose());
    let until = until.expect("a grace period");
    let caller = tokens.authenticate(new.expose()).await.expect("new works");
    assert_eq!(caller.token_id, row.id);
    tokens
        .authenticate(old.expose())
        .await
        .expect("old works in grace");
    tokens.authenticate(old.expose()).await.expect("remembered");
    while keyward::store::now_ms() <= until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tokens.authenticate(old.expose()).await.is_err(),
        "old after grace"
    );
    let fresh = Tokens::new(vault.db().clone());
    assert!(fresh.authenticate(old.expose()).await.is_err());
    fresh
        .authenticate(new.expose())
        .await
        .expect("new still works");

    // Without one the replaced value is refused at once, even remembered.
    tokens.authenticate(new.expose()).await.expect("remembered");
    let (_, newer, until) = tokens
        .rotate(&row.id, Duration::ZERO)
        .await
        .expect("rotate");
    assert_eq!(until, None);
    assert!(tokens.authenticate(new.expose()).await.is_err());
    assert!(fresh.authenticate(old.expose()).await.is_err());
    tokens
        .authenticate(newer.expose())
        .await
        .expect("newest works");

    // A revoked or unknown token, a legacy key and a long grace are refused.
    tokens.revoke(&row.id).await.expect("revoke");
    let err = tokens
        .rotate(&row.id, Duration::ZERO)
        .await
        .err()
        .expect("revoked");
    assert!(matches!(err, AuthError::NotFound(_)), "{err}");
    assert!(tokens.authenticate(newer.expose()).await.is_err());
    for id in ["0000000000000000", "nope", "' OR 1=1 --"] {
        let err = tokens
            .rotate(id, Duration::ZERO)
            .await
            .err()
            .expect("unknown");
        assert!(matches!(err, AuthError::NotFound(_)), "{id}: {err}");
    }
    let err = tokens
        .rotate("legacy-0011223344556677", Duration::ZERO)
        .await
        .err()
        .expect("legacy");
    assert!(matches!(err, AuthError::Legacy(_)) && err.http_status() == 400);
    let (other, _) = tokens
        .create("other", Role::Resolver)
        .await
        .expect("create");
    let err = tokens
        .rotate(&other.id, keyward::auth::token::MAX_GRACE * 2)
        .await
        .err()
        .expect("long grace");
    assert!(matches!(err, AuthError::BadGrace), "{err}");
}

/// A token made to last a second works until then and is refused after —
/// also by a process that remembered it a moment before (the cache here
/// trusts an entry for a minute, far past the expiry).
async fn an_expired_token_is_refused_like_a_revoked_one(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let tokens = Tokens::with_cache_ttl(vault.db().clone(), std::time::Duration::from_secs(60));
    let ttl = std::time::Duration::from_millis(1500);
    let (row, token) = tokens
        .create_with(
            "short",
            Role::Resolver,
            Grant {
                ttl: Some(ttl),
                policy: None,
            },
        )
        .await
        .expect("create");
    let expires = row.expires_at.expect("an expiry");
    assert_eq!(expires - row.created_at, 1500);
    let (_, lasting) = tokens
        .create("lasting", Role::Resolver)
        .await
        .expect("create");
    tokens
        .authenticate(token.expose())
        .await
        .expect("valid before expiry");
    tokens
        .authenticate(token.expose())
        .await
        .expect("remembered");
    while keyward::store::now_ms() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let err = tokens
        .authenticate(token.expose())
        .await
        .expect_err("expired");
    assert!(
        matches!(err, AuthError::Invalid) && err.http_status() == 401,
        "{err}"
    );
    // A fresh process (no cache) refuses it too; tokens without expiry live on.
    let fresh = Tokens::new(vault.db().clone());
    assert!(fresh.authenticate(token.expose()).await.is_err());
    fresh
        .authenticate(lasting.expose())
        .await
        .expect("no expiry");
    let listed = tokens.list().await.expect("list");
    let shown = listed.iter().find(|t| t.id == row.id).expect("listed");
    assert_eq!(shown.expires_at, Some(expires));
    // Zero and over ten years are refused.
    for bad in [std::time::Duration::ZERO, keyward::auth::token::MAX_TTL * 2] {
        let err = tokens
            .create_with(
                "bad",
                Role::Resolver,
                Grant {
                    ttl: Some(bad),
                    policy: None,
                },
            )
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, AuthError::BadTtl) && err.http_status() == 400);
    }
}

async fn a_token_authenticates_until_revoked(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let tokens = Tokens::new(vault.db().clone());
    let (row, token) = tokens
        .create("deploy bot", Role::Resolver)
        .await
        .expect("create");
    assert!(token.expose().starts_with(&format!("kw_{}_", row.id)));
    assert_eq!((row.role.as_str(), row.last_used_at), ("resolver", None));

    let caller = tokens.authenticate(token.expose()).await.expect("valid");
    assert_eq!(caller.role, Role::Resolver);
    assert_eq!(caller.accessor(), format!("token:deploy bot#{}", row.id));
    assert!(matches!(
        caller.require(Role::Operator),
        Err(AuthError::Forbidden { .. })
    ));
    caller
        .require(Role::Resolver)
        .expect("resolver may resolve");
    let listed = tokens.list().await.expect("list");
    assert!(listed[0].last_used_at.is_some(), "last use is recorded");

    // The same id with another secret is not the token.
    let mut forged = token.expose().to_owned();
    let last = forged.pop().expect("non-empty");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let err = tokens.authenticate(&forged).await.expect_err("forged");
    assert!(matches!(err, AuthError::Invalid) && err.http_status() == 401);

    let (op_row, op) = tokens.create("ops", Role::Operator).await.expect("create");
    tokens.revoke(&row.id).await.expect("revoke");
    let err = tokens
        .authenticate(token.expose())
        .await
        .expect_err("revoked");
    assert!(matches!(err, AuthError::Invalid), "{err}");
    let err = tokens.revoke(&row.id).await.expect_err("already revoked");
    assert!(matches!(err, AuthError::NotFound(_)) && err.http_status() == 404);
    // Revoking one token leaves the others working.
    let caller = tokens.authenticate(op.expose()).await.expect("other token");
    assert_eq!((caller.role, caller.token_id), (Role::Operator, op_row.id));
    let listed = tokens.list().await.expect("list");
    assert_eq!(listed.len(), 2);
    let revoked = listed.iter().find(|t| t.id == row.id).expect("kept");
    assert!(
        revoked.revoked_at.is_some(),
        "a revoked token keeps its row"
    );
}

async fn only_a_hash_of_the_token_is_stored(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let tokens = Tokens::new(vault.db().clone());
    let (_, token) = tokens.create("ci", Role::Operator).await.expect("create");
    // `kw_<id>_<secret>`: the secret is base64url and may hold `_` itself,
    // so it is everything after the second `_`, not after the last.
    let secret_half = token
        .expose()
        .splitn(3, '_')
        .nth(2)
        .expect("secret")
        .to_owned();
    assert!(secret_half.len() >= 40, "{secret_half:?}");
    drop(vault);
    let raw = db.raw_bytes();
    assert!(!contains(&raw, token.expose().as_bytes()));
    assert!(!contains(&raw, secret_half.as_bytes()));
}

async fn hostile_tokens_and_names_are_refused(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let tokens = Tokens::new(vault.db().clone());
    let (row, token) = tokens.create("real", Role::Operator).await.expect("create");
    let long = "kw_".to_owned() + &"a".repeat(100_000);
    let sql = format!("kw_{}_' OR '1'='1{}", row.id, "A".repeat(31));
    let cases = [
        "",
        "Bearer",
        "kw_",
        long.as_str(),
        sql.as_str(),
        &token.expose()[..token.expose().len() - 1],
        &token.expose().replace("kw_", "KW_"),
        "kw_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ];
    for presented in cases {
        let err = tokens.authenticate(presented).await.expect_err("refused");
        assert!(matches!(err, AuthError::Invalid), "{presented:.40}: {err}");
    }
    for name in [
        "",
        " ",
        "a\nb",
        "x'; DROP TABLE api_token; --",
        &"n".repeat(65),
    ] {
        let Err(err) = tokens.create(name, Role::Resolver).await else {
            panic!("{name:?} was accepted");
        };
        assert!(matches!(err, AuthError::BadName(_)) && err.http_status() == 400);
    }
    assert_eq!(
        tokens.list().await.expect("list").len(),
        1,
        "nothing was added"
    );
    tokens
        .authenticate(token.expose())
        .await
        .expect("the real token still works");
}
