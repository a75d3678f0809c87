//! Operator sessions and one-time sign-in links on both backends: a link
//! signs in once even when many redeem it at the same moment (as hosts
//! sharing PostgreSQL would), sign-out ends the session for every host,
//! and the database holds only hashes.

use keyward::auth::{AuthError, Sessions};

use crate::support::{contains, TestDb, TestKey};

crate::on_both_backends!(
    a_link_signs_in_exactly_once_under_a_race,
    sessions_end_everywhere_and_only_hashes_are_stored,
);

async fn a_link_signs_in_exactly_once_under_a_race(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    // Two handles on one store stand for two hosts.
    let (a, b) = (
        Sessions::new(vault.db().clone()),
        Sessions::new(vault.db().clone()),
    );
    let link = a.link("dev").await.expect("link");
    assert!(b.link_usable(link.expose()).await.expect("usable"));
    let text = link.expose().to_owned();
    let mut racers = Vec::new();
    for i in 0..16 {
        let (s, t) = (if i % 2 == 0 { a.clone() } else { b.clone() }, text.clone());
        racers.push(tokio::spawn(
            async move { s.redeem(&t).await.map(|(s, _)| s) },
        ));
    }
    let mut won = 0;
    for r in racers {
        match r.await.expect("join") {
            Ok(session) => {
                won += 1;
                assert_eq!(session.subject, "dev");
            }
            Err(AuthError::Invalid) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(won, 1, "a one-time link signed in {won} times");
    assert!(!a.link_usable(&text).await.expect("usable"));
}

async fn sessions_end_everywhere_and_only_hashes_are_stored(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let (a, b) = (
        Sessions::new(vault.db().clone()),
        Sessions::new(vault.db().clone()),
    );
    let (session, secret) = a.start("alice").await.expect("start");
    let seen = b
        .get(secret.expose())
        .await
        .expect("the other host sees it");
    assert_eq!(seen, session);
    assert_eq!(seen.accessor(), "session:alice");
    let link = a.link("bob").await.expect("link");
    vault.db().close().await;
    let raw = db.raw_bytes();
    assert!(
        !contains(&raw, secret.expose().as_bytes()),
        "a session secret is stored"
    );
    assert!(
        !contains(&raw, link.expose().as_bytes()),
        "a link secret is stored"
    );
    assert!(
        !contains(&raw, session.csrf().as_bytes()),
        "a CSRF token is stored"
    );
    let vault = db.open(&key).await;
    let (a, b) = (
        Sessions::new(vault.db().clone()),
        Sessions::new(vault.db().clone()),
    );
    let again = a
        .get(secret.expose())
        .await
        .expect("sessions survive a restart");
    b.end(&again).await.expect("end");
    assert!(matches!(
        a.get(secret.expose()).await,
        Err(AuthError::Invalid)
    ));
    for hostile in ["", "x", &"A".repeat(43), &"A".repeat(10_000), "' OR 1=1 --"] {
        assert!(
            matches!(a.get(hostile).await, Err(AuthError::Invalid)),
            "{hostile:?}"
        );
        assert!(
            matches!(a.redeem(hostile).await, Err(AuthError::Invalid)),
            "{hostile:?}"
        );
        assert!(!a.link_usable(hostile).await.expect("usable"));
    }
}
