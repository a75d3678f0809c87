//! Operator OAuth tokens, settings and sign-ins in progress on both
//! backends, in depth (tests/store/forge.rs has the overview): round trips,
//! the generation and the one-refresh lease under a race, single-use
//! sign-in states, sealed columns with no plaintext, hostile input, and
//! master-key rotation with `--max-rows`.

use keyward::crypto::{oauth_pending_aad, oauth_token_aad, Keyring, Sealed};
use keyward::store::forge::{self, NewToken, Refreshed, ACTIVE_FORGE};
use keyward::store::now_ms;
use keyward::vault::Vault;

use crate::access;
use crate::support::{contains, TestDb, TestKey};

crate::on_both_backends!(
    tokens_round_trip_and_every_change_moves_the_generation,
    settings_round_trip_inside_a_transaction,
    one_lease_per_generation_under_a_race,
    a_refresh_is_stored_over_its_generation_and_an_expired_lease_is_retaken,
    kept_refresh_answers_live_until_their_generation_is_stored,
    a_sign_in_state_is_used_once_under_a_race_and_never_after_expiry,
    sealed_columns_hold_no_plaintext,
    hostile_input_is_answered_without_panics,
    rotation_reseals_operator_tokens_within_max_rows_and_drops_old_sign_ins,
);

const ACCESS: &[u8] = b"gho_access-plaintext-0123456789";
const REFRESH: &[u8] = b"ghr_refresh-plaintext-9876543210";

fn new_token(ring: &Keyring, forge_type: &str, refresh: bool, now: i64) -> NewToken {
    NewToken {
        forge_type: forge_type.to_owned(),
        access: ring.seal(ACCESS, &oauth_token_aad(forge_type, "access")),
        refresh: refresh.then(|| ring.seal(REFRESH, &oauth_token_aad(forge_type, "refresh"))),
        expires_at: Some(now + 3_600_000),
        scopes: vec!["repo".into(), "read:user".into()],
        account_login: "octocat".into(),
        account_id: "583231".into(),
        account_email: Some("alice@example.com".into()),
        base_url: "https://github.example".into(),
        now,
    }
}

async fn upsert(kdb: &keyward::store::Db, token: &NewToken) {
    let mut conn = kdb.writer().await.expect("connection");
    forge::upsert_token(&mut conn, token).await.expect("upsert");
}

fn refreshed(ring: &Keyring, forge_type: &str, access: &[u8], now: i64) -> Refreshed {
    Refreshed {
        access: ring.seal(access, &oauth_token_aad(forge_type, "access")),
        refresh: Some(ring.seal(b"ghr_next", &oauth_token_aad(forge_type, "refresh"))),
        expires_at: Some(now + 7_200_000),
        scopes: vec!["repo".into()],
        now,
    }
}

fn open(ring: &Keyring, sealed: &Sealed, aad: &[u8]) -> Vec<u8> {
    ring.open(sealed, aad).expect("opens").expose().to_vec()
}

async fn token(kdb: &keyward::store::Db, forge_type: &str) -> forge::OAuthTokenRow {
    forge::get_token(kdb.reader(), forge_type)
        .await
        .expect("get")
        .expect("row")
}

async fn lease(
    kdb: &keyward::store::Db,
    generation: i64,
    holder: &str,
    now: i64,
    until: i64,
) -> bool {
    forge::take_refresh_lease(
        &mut kdb.writer().await.expect("writer"),
        "github",
        generation,
        holder,
        now,
        until,
    )
    .await
    .expect("take")
}

async fn finish(kdb: &keyward::store::Db, generation: i64, update: &Refreshed) -> bool {
    forge::finish_refresh(
        &mut kdb.writer().await.expect("writer"),
        "github",
        generation,
        update,
    )
    .await
    .expect("finish")
}

async fn tokens_round_trip_and_every_change_moves_the_generation(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (kdb, ring) = (vault.db().clone(), vault.keyring());
    assert!(forge::get_token(kdb.reader(), "github")
        .await
        .expect("get")
        .is_none());
    assert!(forge::list_tokens(kdb.reader())
        .await
        .expect("list")
        .is_empty());

    upsert(&kdb, &new_token(ring, "github", true, 1_000)).await;
    let row = token(&kdb, "github").await;
    assert_eq!(row.forge_type, "github");
    assert_eq!(row.generation, 1);
    assert_eq!((row.created_at, row.updated_at), (1_000, 1_000));
    assert_eq!(row.expires_at, Some(3_601_000));
    assert_eq!(row.scopes, ["repo", "read:user"]);
    assert_eq!(
        (row.account_login.as_str(), row.account_id.as_str()),
        ("octocat", "583231")
    );
    assert_eq!(row.base_url, "https://github.example");
    assert_eq!(
        open(ring, &row.access, &oauth_token_aad("github", "access")),
        ACCESS
    );
    let refresh = row.refresh.clone().expect("a refresh token");
    assert_eq!(
        open(ring, &refresh, &oauth_token_aad("github", "refresh")),
        REFRESH
    );
    // Neither token opens in the other's place, nor in another forge's row.
    assert!(ring
        .open(&refresh, &oauth_token_aad("github", "access"))
        .is_err());
    assert!(ring
        .open(&row.access, &oauth_token_aad("gitlab", "access"))
        .is_err());

    // A new sign-in replaces the tokens and the account, keeps created_at,
    // moves the generation; no refresh token now means none stored.
    let mut again = new_token(ring, "github", false, 2_000);
    again.expires_at = None;
    again.scopes = Vec::new();
    again.account_login = "hubot".into();
    upsert(&kdb, &again).await;
    let row = token(&kdb, "github").await;
    assert_eq!(row.generation, 2);
    assert_eq!((row.created_at, row.updated_at), (1_000, 2_000));
    assert_eq!((row.expires_at, row.refresh.is_none()), (None, true));
    assert!(row.scopes.is_empty());
    assert_eq!(row.account_login, "hubot");

    upsert(&kdb, &new_token(ring, "forgejo", true, 3_000)).await;
    let all = forge::list_tokens(kdb.reader()).await.expect("list");
    let forges: Vec<_> = all.iter().map(|r| r.forge_type.as_str()).collect();
    assert_eq!(forges, ["forgejo", "github"]);
    assert_eq!(all[0].generation, 1, "generations are per forge");

    assert!(
        forge::delete_token(&mut kdb.writer().await.expect("writer"), "github")
            .await
            .expect("delete")
    );
    assert!(
        !forge::delete_token(&mut kdb.writer().await.expect("writer"), "github")
            .await
            .expect("delete")
    );
    assert!(forge::get_token(kdb.reader(), "github")
        .await
        .expect("get")
        .is_none());
    assert_eq!(
        forge::list_tokens(kdb.reader()).await.expect("list").len(),
        1
    );
}

async fn settings_round_trip_inside_a_transaction(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    assert_eq!(
        forge::get_setting(kdb.reader(), ACTIVE_FORGE)
            .await
            .expect("get"),
        None
    );

    // Token and active forge commit together, or not at all.
    let mut tx = kdb.begin_write().await.expect("begin");
    forge::upsert_token(&mut tx, &new_token(vault.keyring(), "github", true, 1))
        .await
        .expect("upsert");
    forge::set_setting(&mut tx, ACTIVE_FORGE, "github", 1)
        .await
        .expect("set");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        forge::get_setting(kdb.reader(), ACTIVE_FORGE)
            .await
            .expect("get"),
        None
    );
    assert!(forge::get_token(kdb.reader(), "github")
        .await
        .expect("get")
        .is_none());

    let mut tx = kdb.begin_write().await.expect("begin");
    forge::set_setting(&mut tx, ACTIVE_FORGE, "github", 1)
        .await
        .expect("set");
    forge::set_setting(&mut tx, ACTIVE_FORGE, "forgejo", 2)
        .await
        .expect("set again");
    tx.commit().await.expect("commit");
    assert_eq!(
        forge::get_setting(kdb.reader(), ACTIVE_FORGE)
            .await
            .expect("get"),
        Some("forgejo".into())
    );
    forge::clear_setting(&mut kdb.writer().await.expect("writer"), ACTIVE_FORGE)
        .await
        .expect("clear");
    forge::clear_setting(&mut kdb.writer().await.expect("writer"), ACTIVE_FORGE)
        .await
        .expect("clearing nothing is fine");
    assert_eq!(
        forge::get_setting(kdb.reader(), ACTIVE_FORGE)
            .await
            .expect("get"),
        None
    );
}

async fn one_lease_per_generation_under_a_race(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    upsert(&kdb, &new_token(vault.keyring(), "github", true, 1)).await;
    let now = now_ms();
    let mut racers = Vec::new();
    for i in 0..16 {
        let kdb = kdb.clone();
        racers.push(tokio::spawn(async move {
            let holder = format!("host-{i}");
            forge::take_refresh_lease(
                &mut kdb.writer().await.expect("writer"),
                "github",
                1,
                &holder,
                now,
                now + 30_000,
            )
            .await
            .map(|won| won.then_some(holder))
        }));
    }
    let mut winners = Vec::new();
    for r in racers {
        if let Some(holder) = r.await.expect("join").expect("no database error") {
            winners.push(holder);
        }
    }
    assert_eq!(winners.len(), 1, "one generation leased to {winners:?}");
    // While the lease is live nobody else gets it.
    assert!(!lease(&kdb, 1, "late", now + 1, now + 30_000).await);
    // The winner refreshes; the next generation can be leased again.
    let ring = vault.keyring();
    assert!(finish(&kdb, 1, &refreshed(ring, "github", b"new", now)).await);
    let row = token(&kdb, "github").await;
    assert_eq!(row.generation, 2);
    assert_eq!(
        open(ring, &row.access, &oauth_token_aad("github", "access")),
        b"new"
    );
    assert!(
        !lease(&kdb, 1, "stale", now, now + 30_000).await,
        "a generation already refreshed is not leased again"
    );
    assert!(lease(&kdb, 2, "next", now, now + 30_000).await);
    assert!(
        !forge::take_refresh_lease(
            &mut kdb.writer().await.expect("writer"),
            "gitlab",
            1,
            "x",
            now,
            now + 30_000
        )
        .await
        .expect("take"),
        "no row, no lease"
    );
}

async fn a_refresh_is_stored_over_its_generation_and_an_expired_lease_is_retaken(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (kdb, ring) = (vault.db().clone(), vault.keyring());
    upsert(&kdb, &new_token(ring, "github", true, 1)).await;
    assert!(lease(&kdb, 1, "a", 100, 200).await);
    // Releasing someone else's lease does nothing; it is still held at 150.
    forge::release_refresh_lease(&mut kdb.writer().await.expect("writer"), "github", "b")
        .await
        .expect("release");
    assert!(!lease(&kdb, 1, "b", 150, 250).await);
    // Expired at 200: retaken by b.
    assert!(
        lease(&kdb, 1, "b", 200, 300).await,
        "an expired lease is retaken"
    );
    // a's refresh completed at the forge (which spent the old refresh
    // token): it is stored though a lost the lease, and b's lease goes.
    assert!(finish(&kdb, 1, &refreshed(ring, "github", b"a's", 210)).await);
    let row = token(&kdb, "github").await;
    assert_eq!((row.generation, row.updated_at), (2, 210));
    assert_eq!(
        open(ring, &row.access, &oauth_token_aad("github", "access")),
        b"a's"
    );
    assert_eq!(row.scopes, ["repo"]);
    // The same generation is stored once: a second refresh of it is refused.
    assert!(!finish(&kdb, 1, &refreshed(ring, "github", b"again", 240)).await);
    assert!(
        lease(&kdb, 2, "c", 220, 320).await,
        "the lease went with it"
    );
    // A new sign-in drops any lease and moves the generation: a refresh of
    // the old generation no longer lands.
    upsert(&kdb, &new_token(ring, "github", true, 260)).await;
    assert_eq!(token(&kdb, "github").await.generation, 3);
    assert!(
        !finish(&kdb, 2, &refreshed(ring, "github", b"d's", 270)).await,
        "a sign-in supersedes a refresh in flight"
    );
    assert!(lease(&kdb, 3, "e", 280, 380).await);
}

async fn kept_refresh_answers_live_until_their_generation_is_stored(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (kdb, ring) = (vault.db().clone(), vault.keyring());
    upsert(&kdb, &new_token(ring, "github", true, 1)).await;
    let aad = |g: i64, a: &str| keyward::crypto::oauth_refresh_answer_aad("github", g, a);
    for (g, a) in [(1, "a1"), (1, "a2"), (2, "b1")] {
        forge::keep_refresh_answer(
            &mut kdb.writer().await.expect("writer"),
            "github",
            g,
            a,
            &ring.seal(a.as_bytes(), &aad(g, a)),
            5,
        )
        .await
        .expect("keep");
    }
    let kept = forge::kept_refresh_answers(kdb.reader(), "github", 1)
        .await
        .expect("kept");
    let attempts: Vec<_> = kept.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(attempts, ["a1", "a2"]);
    assert_eq!(open(ring, &kept[0].1, &aad(1, "a1")), b"a1");
    // Bound to forge, generation and attempt.
    assert!(ring.open(&kept[0].1, &aad(1, "a2")).is_err());
    assert!(ring.open(&kept[0].1, &aad(2, "a1")).is_err());
    forge::drop_refresh_answer(&mut kdb.writer().await.expect("writer"), "github", 1, "a1")
        .await
        .expect("drop");
    assert_eq!(
        forge::kept_refresh_answers(kdb.reader(), "github", 1)
            .await
            .expect("kept")
            .len(),
        1
    );
    // Storing generation 1 forgets its answers, not the next one's.
    assert!(finish(&kdb, 1, &refreshed(ring, "github", b"new", 10)).await);
    assert!(forge::kept_refresh_answers(kdb.reader(), "github", 1)
        .await
        .expect("kept")
        .is_empty());
    assert_eq!(
        forge::kept_refresh_answers(kdb.reader(), "github", 2)
            .await
            .expect("kept")
            .len(),
        1
    );
    // A new sign-in forgets them all (a re-created row restarts at 1).
    upsert(&kdb, &new_token(ring, "github", true, 20)).await;
    assert!(forge::kept_refresh_answers(kdb.reader(), "github", 2)
        .await
        .expect("kept")
        .is_empty());
}

async fn a_sign_in_state_is_used_once_under_a_race_and_never_after_expiry(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let ring = vault.keyring();
    let hash = "a".repeat(64);
    let sealed = ring.seal(b"pkce-verifier", &oauth_pending_aad(&hash));
    let now = now_ms();
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        &hash,
        "b",
        "github",
        &sealed,
        now,
        now + 600_000,
    )
    .await
    .expect("insert");
    assert!(
        forge::insert_pending(
            &mut kdb.writer().await.expect("writer"),
            &hash,
            "b",
            "github",
            &sealed,
            now,
            now + 600_000
        )
        .await
        .is_err(),
        "a state is stored once"
    );
    let mut racers = Vec::new();
    for _ in 0..16 {
        let (kdb, hash) = (kdb.clone(), hash.clone());
        racers.push(tokio::spawn(async move {
            forge::consume_pending(
                &mut kdb.writer().await.expect("writer"),
                &hash,
                "b",
                now + 1,
            )
            .await
        }));
    }
    let mut won = Vec::new();
    for r in racers {
        if let Some(found) = r.await.expect("join").expect("no database error") {
            won.push(found);
        }
    }
    assert_eq!(won.len(), 1, "a sign-in state was used {} times", won.len());
    let (forge_type, got) = won.pop().expect("one");
    assert_eq!(forge_type, "github");
    assert_eq!(got, sealed);
    assert_eq!(
        open(ring, &got, &oauth_pending_aad(&hash)),
        b"pkce-verifier"
    );
    assert!(ring
        .open(&got, &oauth_pending_aad(&"b".repeat(64)))
        .is_err());
    let consume = |hash: String, at: i64| {
        let kdb = kdb.clone();
        async move {
            forge::consume_pending(&mut kdb.writer().await.expect("writer"), &hash, "b", at)
                .await
                .expect("consume")
        }
    };
    assert!(consume(hash.clone(), now + 2).await.is_none(), "used up");

    // Expiry: refused at and after expires_at, then purged.
    let late = "c".repeat(64);
    let sealed = ring.seal(b"v2", &oauth_pending_aad(&late));
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        &late,
        "b",
        "forgejo",
        &sealed,
        now,
        now + 10,
    )
    .await
    .expect("insert");
    assert!(consume(late.clone(), now + 10).await.is_none(), "expired");
    assert!(consume("d".repeat(64), now).await.is_none(), "unknown");
    let live = "e".repeat(64);
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        &live,
        "b",
        "forgejo",
        &sealed,
        now,
        now + 600_000,
    )
    .await
    .expect("insert");
    assert!(
        forge::purge_pending(&mut kdb.writer().await.expect("writer"), now + 11)
            .await
            .expect("purge")
            >= 1
    );
    assert_eq!(
        forge::purge_pending(&mut kdb.writer().await.expect("writer"), now + 11)
            .await
            .expect("purge"),
        0
    );
    let (f, _) = consume(live, now + 12)
        .await
        .expect("a live sign-in survives the purge");
    assert_eq!(f, "forgejo");
}

async fn sealed_columns_hold_no_plaintext(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let (kdb, ring) = (vault.db().clone(), vault.keyring());
    upsert(&kdb, &new_token(ring, "github", true, 1)).await;
    let verifier = b"pkce-verifier-plaintext-abcdefghijklmnop";
    let hash = "f".repeat(64);
    let sealed = ring.seal(verifier, &oauth_pending_aad(&hash));
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        &hash,
        "b",
        "github",
        &sealed,
        1,
        i64::MAX,
    )
    .await
    .expect("insert");
    vault.db().close().await;
    drop(vault);
    let raw = db.raw_bytes();
    assert!(contains(&raw, b"octocat"), "the search does see the rows");
    for (what, plain) in [
        ("access token", ACCESS),
        ("refresh token", REFRESH),
        ("PKCE verifier", &verifier[..]),
    ] {
        assert!(!contains(&raw, plain), "the {what} is stored in clear");
    }
    // And they open again after a restart.
    let vault = db.open(&key).await;
    let row = token(vault.db(), "github").await;
    assert_eq!(
        open(
            vault.keyring(),
            &row.access,
            &oauth_token_aad("github", "access")
        ),
        ACCESS
    );
}

async fn hostile_input_is_answered_without_panics(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (kdb, ring) = (vault.db().clone(), vault.keyring());
    let long = "A".repeat(100_000);
    let noisy: String = (0..3_000u32)
        .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20_000).unwrap_or('x'))
        .collect();
    let hostile = [
        "",
        " ",
        "'; DROP TABLE operator_oauth_tokens; --",
        "ünï/cødé 🔑",
        "a\u{0}b",
        long.as_str(),
        noisy.as_str(),
    ];
    for text in hostile {
        // Reads of nothing answer nothing, or an error — never a panic.
        let none = |found: Result<bool, sqlx::Error>| found.unwrap_or(true);
        assert!(none(
            forge::get_token(kdb.reader(), text)
                .await
                .map(|r| r.is_none())
        ));
        assert!(none(
            forge::get_setting(kdb.reader(), text)
                .await
                .map(|r| r.is_none())
        ));
        assert!(none(
            forge::consume_pending(&mut kdb.writer().await.expect("writer"), text, "b", 0)
                .await
                .map(|r| r.is_none())
        ));
        assert!(!forge::take_refresh_lease(
            &mut kdb.writer().await.expect("writer"),
            text,
            1,
            text,
            0,
            1
        )
        .await
        .unwrap_or(false));
        let _ = forge::delete_token(&mut kdb.writer().await.expect("writer"), text).await;
        let _ = forge::clear_setting(&mut kdb.writer().await.expect("writer"), text).await;
        let _ = forge::release_refresh_lease(&mut kdb.writer().await.expect("writer"), text, text)
            .await;

        // Writes store the value exactly or fail with an error (PostgreSQL
        // text holds no NUL; an index entry has a size limit).
        let mut new = new_token(ring, text, true, 5);
        new.account_login = text.to_owned();
        new.scopes = vec![text.to_owned()];
        let mut conn = kdb.writer().await.expect("connection");
        if forge::upsert_token(&mut conn, &new).await.is_ok() {
            let row = token(&kdb, text).await;
            assert_eq!(row.account_login, text);
            assert_eq!(
                open(ring, &row.access, &oauth_token_aad(text, "access")),
                ACCESS
            );
            assert!(
                forge::delete_token(&mut kdb.writer().await.expect("writer"), text)
                    .await
                    .expect("delete")
            );
        }
        if forge::set_setting(&mut conn, text, text, 1).await.is_ok() {
            assert_eq!(
                forge::get_setting(kdb.reader(), text)
                    .await
                    .expect("get")
                    .as_deref(),
                Some(text)
            );
        }
        drop(conn);
        let sealed = ring.seal(text.as_bytes(), &oauth_pending_aad(text));
        if forge::insert_pending(
            &mut kdb.writer().await.expect("writer"),
            text,
            "b",
            text,
            &sealed,
            0,
            i64::MAX,
        )
        .await
        .is_ok()
        {
            let (f, s) =
                forge::consume_pending(&mut kdb.writer().await.expect("writer"), text, "b", 1)
                    .await
                    .expect("consume")
                    .expect("row");
            assert_eq!((f.as_str(), &s), (text, &sealed));
        }
    }
    // The store still works afterwards.
    upsert(&kdb, &new_token(ring, "github", false, 1)).await;
    assert_eq!(token(&kdb, "github").await.generation, 1);
}

async fn rotation_reseals_operator_tokens_within_max_rows_and_drops_old_sign_ins(db: TestDb) {
    let old = TestKey::new();
    let vault = db.open(&old).await;
    let kdb = vault.db().clone();
    upsert(&kdb, &new_token(vault.keyring(), "github", true, 1)).await;
    upsert(&kdb, &new_token(vault.keyring(), "forgejo", false, 1)).await;
    let hash = "0".repeat(64);
    let sealed = vault.keyring().seal(b"v", &oauth_pending_aad(&hash));
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        &hash,
        "b",
        "github",
        &sealed,
        1,
        i64::MAX,
    )
    .await
    .expect("insert");
    let old_id = vault.keyring().current_id().to_string();
    vault.db().close().await;
    drop(vault);

    let new = TestKey::new();
    let vault = Vault::open_with(
        &db.config(&new, &[&old]),
        keyward::vault::NewKey::Adopt { replace: false },
    )
    .await
    .expect("open with the old key as previous");
    let kdb = vault.db().clone();
    let new_id = vault.keyring().current_id().to_string();
    // A sign-in started under the new key is kept.
    let fresh = "1".repeat(64);
    let fresh_sealed = vault.keyring().seal(b"w", &oauth_pending_aad(&fresh));
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        &fresh,
        "b",
        "github",
        &fresh_sealed,
        1,
        i64::MAX,
    )
    .await
    .expect("insert");
    // --max-rows counts token rows too.
    let report = vault
        .rotate_master(&access(), Some(1))
        .await
        .expect("rotate");
    assert_eq!((report.resealed, report.remaining), (1, 1), "{report:?}");
    assert!(!report.complete());
    let report = vault.rotate_master(&access(), None).await.expect("rotate");
    assert_eq!((report.resealed, report.remaining), (1, 0), "{report:?}");
    assert!(report.complete(), "{report:?}");
    for row in forge::list_tokens(kdb.reader()).await.expect("list") {
        assert_eq!(row.access.key_id, new_id);
        assert_eq!(row.generation, 1, "a re-seal is not a token change");
        if let Some(r) = &row.refresh {
            assert_eq!(r.key_id, new_id);
        }
    }
    let again = vault.rotate_master(&access(), None).await.expect("again");
    assert_eq!((again.resealed, again.remaining), (0, 0));
    // Both tokens of a re-sealed row are on the access log.
    let logged: Vec<_> = crate::log_summary(&vault)
        .await
        .into_iter()
        .filter(|(action, _, scope, _)| action == "reseal" && scope.starts_with("operator_oauth:"))
        .map(|(_, _, scope, name)| format!("{scope}/{name}"))
        .collect();
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert!(logged.contains(&"operator_oauth:github/REFRESH_TOKEN".to_owned()));
    assert!(
        forge::consume_pending(&mut kdb.writer().await.expect("writer"), &hash, "b", 2)
            .await
            .expect("consume")
            .is_none()
    );
    assert!(
        forge::consume_pending(&mut kdb.writer().await.expect("writer"), &fresh, "b", 2)
            .await
            .expect("consume")
            .is_some()
    );
    vault.db().close().await;
    drop(vault);

    // The new key alone opens everything; the old key's id is gone.
    let vault = db.open(&new).await;
    let ring = vault.keyring();
    let row = token(vault.db(), "github").await;
    assert_ne!(row.access.key_id, old_id);
    assert_eq!(
        open(ring, &row.access, &oauth_token_aad("github", "access")),
        ACCESS
    );
    let refresh = row.refresh.expect("refresh");
    assert_eq!(
        open(ring, &refresh, &oauth_token_aad("github", "refresh")),
        REFRESH
    );
}
