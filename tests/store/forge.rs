//! Operators' forge tokens, the active forge, sign-ins in progress and
//! agent types, on both backends: the refresh lease and the pending
//! sign-in are won by exactly one of many racers (as hosts sharing
//! PostgreSQL would race), tokens are sealed, deletes cascade as designed,
//! and `key rotate` re-seals the tokens.

use keyward::crypto::{oauth_pending_aad, oauth_token_aad};
use keyward::store::{agents, forge, now_ms};

use crate::support::{contains, TestDb, TestKey};
use crate::{access, name, scope};

crate::on_both_backends!(
    tokens_round_trip_sealed_and_generations_move,
    one_of_many_racers_takes_the_refresh_lease,
    a_pending_sign_in_is_used_once_and_expires,
    agent_types_link_secrets_and_cascade,
    key_rotation_reseals_operator_tokens,
);

const ACCESS: &[u8] = b"gho_access-token-value-0xA11CE";
const REFRESH: &[u8] = b"ghr_refresh-token-value-0xB0B";

fn new_token(vault: &keyward::vault::Vault, forge_type: &str, login: &str) -> forge::NewToken {
    let k = vault.keyring();
    forge::NewToken {
        forge_type: forge_type.to_owned(),
        access: k.seal(ACCESS, &oauth_token_aad(forge_type, "access")),
        refresh: Some(k.seal(REFRESH, &oauth_token_aad(forge_type, "refresh"))),
        expires_at: Some(now_ms() + 3_600_000),
        scopes: vec!["repo".into(), "read:user".into()],
        account_login: login.to_owned(),
        account_id: "42".into(),
        account_email: None,
        base_url: "https://forge.example".into(),
        now: now_ms(),
    }
}

async fn tokens_round_trip_sealed_and_generations_move(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    assert!(forge::get_token(kdb.reader(), "github")
        .await
        .expect("get")
        .is_none());
    let mut conn = kdb.writer().await.expect("conn");
    forge::upsert_token(&mut conn, &new_token(&vault, "github", "alice"))
        .await
        .expect("upsert");
    forge::set_setting(&mut conn, forge::ACTIVE_FORGE, "github", now_ms())
        .await
        .expect("set");
    drop(conn);
    let row = forge::get_token(kdb.reader(), "github")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.generation, 1);
    assert_eq!(row.scopes, ["repo", "read:user"]);
    let opened = vault
        .keyring()
        .open(&row.access, &oauth_token_aad("github", "access"))
        .expect("opens");
    assert_eq!(opened.expose(), ACCESS);
    // Sealed to its field: the access token does not open as the refresh one.
    assert!(vault
        .keyring()
        .open(&row.access, &oauth_token_aad("github", "refresh"))
        .is_err());
    assert!(!contains(&db.raw_bytes(), ACCESS) && !contains(&db.raw_bytes(), REFRESH));
    // A second sign-in replaces the tokens and moves the generation.
    let mut conn = kdb.writer().await.expect("conn");
    let mut again = new_token(&vault, "github", "alice");
    again.refresh = None;
    forge::upsert_token(&mut conn, &again)
        .await
        .expect("upsert");
    drop(conn);
    let row = forge::get_token(kdb.reader(), "github")
        .await
        .expect("get")
        .expect("row");
    assert_eq!((row.generation, row.refresh.is_none()), (2, true));
    assert_eq!(
        forge::get_setting(kdb.reader(), forge::ACTIVE_FORGE)
            .await
            .expect("get")
            .as_deref(),
        Some("github")
    );
    forge::clear_setting(
        &mut kdb.writer().await.expect("writer"),
        forge::ACTIVE_FORGE,
    )
    .await
    .expect("clear");
    assert!(forge::get_setting(kdb.reader(), forge::ACTIVE_FORGE)
        .await
        .expect("get")
        .is_none());
    // Hostile text is stored as data.
    let mut conn = kdb.writer().await.expect("conn");
    let odd = new_token(
        &vault,
        "x",
        &format!("ünï'; DROP TABLE secret; --{}", "z".repeat(5000)),
    );
    forge::upsert_token(&mut conn, &odd).await.expect("upsert");
    drop(conn);
    assert_eq!(
        forge::list_tokens(kdb.reader()).await.expect("list").len(),
        2
    );
    assert!(
        forge::delete_token(&mut kdb.writer().await.expect("writer"), "x")
            .await
            .expect("delete")
    );
    assert!(
        !forge::delete_token(&mut kdb.writer().await.expect("writer"), "x")
            .await
            .expect("delete")
    );
}

async fn one_of_many_racers_takes_the_refresh_lease(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let mut conn = kdb.writer().await.expect("conn");
    forge::upsert_token(&mut conn, &new_token(&vault, "gitlab", "alice"))
        .await
        .expect("upsert");
    drop(conn);
    let now = now_ms();
    let mut racers = Vec::new();
    for i in 0..16 {
        let kdb = kdb.clone();
        racers.push(tokio::spawn(async move {
            forge::take_refresh_lease(
                &mut kdb.writer().await.expect("writer"),
                "gitlab",
                1,
                &format!("host-{i}"),
                now,
                now + 30_000,
            )
            .await
            .expect("lease")
        }));
    }
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.expect("join"));
    }
    assert_eq!(won, 1, "{won} racers took the lease");
    let holder = sqlx::query_scalar::<_, String>(
        "SELECT refresh_holder FROM operator_oauth_tokens WHERE forge_type = 'gitlab'",
    )
    .fetch_one(kdb.reader())
    .await
    .expect("holder");
    let refreshed = |k: &keyward::crypto::Keyring| forge::Refreshed {
        access: k.seal(b"new", &oauth_token_aad("gitlab", "access")),
        refresh: None,
        expires_at: None,
        scopes: vec![],
        now: now_ms(),
    };
    assert!(holder.starts_with("host-"));
    // A refresh lands over the generation it refreshed, once.
    assert!(forge::finish_refresh(
        &mut kdb.writer().await.expect("writer"),
        "gitlab",
        1,
        &refreshed(vault.keyring())
    )
    .await
    .expect("finish"));
    assert!(!forge::finish_refresh(
        &mut kdb.writer().await.expect("writer"),
        "gitlab",
        1,
        &refreshed(vault.keyring())
    )
    .await
    .expect("finish"));
    let row = forge::get_token(kdb.reader(), "gitlab")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.generation, 2);
    // A stale generation cannot be leased; an expired lease can be retaken.
    assert!(!forge::take_refresh_lease(
        &mut kdb.writer().await.expect("writer"),
        "gitlab",
        1,
        "late",
        now_ms(),
        now_ms() + 1
    )
    .await
    .expect("lease"));
    assert!(forge::take_refresh_lease(
        &mut kdb.writer().await.expect("writer"),
        "gitlab",
        2,
        "a",
        now_ms(),
        now_ms() - 1
    )
    .await
    .expect("lease"));
    assert!(forge::take_refresh_lease(
        &mut kdb.writer().await.expect("writer"),
        "gitlab",
        2,
        "b",
        now_ms(),
        now_ms() + 30_000
    )
    .await
    .expect("an expired lease is retaken"));
    forge::release_refresh_lease(&mut kdb.writer().await.expect("writer"), "gitlab", "b")
        .await
        .expect("release");
    assert!(forge::take_refresh_lease(
        &mut kdb.writer().await.expect("writer"),
        "gitlab",
        2,
        "c",
        now_ms(),
        now_ms() + 30_000
    )
    .await
    .expect("a released lease is free"));
}

async fn a_pending_sign_in_is_used_once_and_expires(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let sealed = vault.keyring().seal(b"verifier", &oauth_pending_aad("h1"));
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        "h1",
        "b",
        "forgejo",
        &sealed,
        now_ms(),
        now_ms() + 60_000,
    )
    .await
    .expect("insert");
    // Another browser's callback neither gets it nor uses it up.
    assert_eq!(
        forge::pending_browser(kdb.reader(), "h1", now_ms())
            .await
            .expect("browser")
            .as_deref(),
        Some("b")
    );
    assert!(forge::consume_pending(
        &mut kdb.writer().await.expect("writer"),
        "h1",
        "other",
        now_ms()
    )
    .await
    .expect("consume")
    .is_none());
    let mut racers = Vec::new();
    for _ in 0..16 {
        let kdb = kdb.clone();
        racers.push(tokio::spawn(async move {
            forge::consume_pending(
                &mut kdb.writer().await.expect("writer"),
                "h1",
                "b",
                now_ms(),
            )
            .await
            .expect("consume")
        }));
    }
    let mut won = Vec::new();
    for r in racers {
        if let Some(got) = r.await.expect("join") {
            won.push(got);
        }
    }
    assert_eq!(won.len(), 1, "a sign-in was used {} times", won.len());
    let (forge_type, sealed) = won.pop().expect("one");
    assert_eq!(forge_type, "forgejo");
    let verifier = vault
        .keyring()
        .open(&sealed, &oauth_pending_aad("h1"))
        .expect("opens");
    assert_eq!(verifier.expose(), b"verifier");
    // Expired ones are refused and purged.
    forge::insert_pending(
        &mut kdb.writer().await.expect("writer"),
        "h2",
        "b",
        "forgejo",
        &sealed,
        now_ms() - 10,
        now_ms() - 1,
    )
    .await
    .expect("insert");
    assert!(forge::consume_pending(
        &mut kdb.writer().await.expect("writer"),
        "h2",
        "b",
        now_ms()
    )
    .await
    .expect("consume")
    .is_none());
    assert!(
        forge::purge_pending(&mut kdb.writer().await.expect("writer"), now_ms())
            .await
            .expect("purge")
            >= 1
    );
    assert!(forge::consume_pending(
        &mut kdb.writer().await.expect("writer"),
        "unknown",
        "b",
        now_ms()
    )
    .await
    .expect("consume")
    .is_none());
}

async fn agent_types_link_secrets_and_cascade(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    vault
        .create(
            &scope("agent_type:coder"),
            &name("FORGE_TOKEN"),
            b"t1",
            "",
            &access(),
        )
        .await
        .expect("create");
    vault
        .create(
            &scope("instance:i-1"),
            &name("FORGE_TOKEN"),
            b"t2",
            "",
            &access(),
        )
        .await
        .expect("create");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM secret ORDER BY id")
        .fetch_all(kdb.reader())
        .await
        .expect("ids");
    let t = agents::AgentType {
        name: "coder".into(),
        forge: "forgejo".into(),
        base_url: "https://codeberg.org".into(),
        token_secret_id: Some(ids[0]),
        description: "the coding agent".into(),
        created_at: now_ms(),
        updated_at: now_ms(),
    };
    assert!(agents::create(&mut kdb.writer().await.expect("writer"), &t)
        .await
        .expect("create"));
    assert!(
        !agents::create(&mut kdb.writer().await.expect("writer"), &t)
            .await
            .expect("a duplicate is refused")
    );
    assert_eq!(
        agents::get(kdb.reader(), "coder").await.expect("get"),
        Some(t.clone())
    );
    agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-1",
        "coder",
        Some(ids[1]),
        now_ms(),
    )
    .await
    .expect("instance");
    let of = |i: Option<&'static str>| {
        let kdb = kdb.clone();
        async move {
            agents::token_secret_for(kdb.reader(), "coder", i)
                .await
                .expect("token")
                .map(|(_, scope, _)| scope)
        }
    };
    assert_eq!(of(None).await.as_deref(), Some("agent_type:coder"));
    assert_eq!(of(Some("i-1")).await.as_deref(), Some("instance:i-1"));
    assert_eq!(of(Some("i-9")).await.as_deref(), Some("agent_type:coder"));
    // Deleting the instance's secret falls back to the type's token.
    vault
        .delete(&scope("instance:i-1"), &name("FORGE_TOKEN"), &access())
        .await
        .expect("delete");
    assert_eq!(of(Some("i-1")).await.as_deref(), Some("agent_type:coder"));
    assert_eq!(
        agents::list_instances(kdb.reader(), "coder")
            .await
            .expect("list")
            .len(),
        1
    );
    // Deleting the type takes its instances along.
    assert!(
        agents::delete(&mut kdb.writer().await.expect("writer"), "coder")
            .await
            .expect("delete")
    );
    assert!(agents::get_instance(kdb.reader(), "i-1")
        .await
        .expect("get")
        .is_none());
    assert!(
        !agents::delete(&mut kdb.writer().await.expect("writer"), "coder")
            .await
            .expect("delete")
    );
    assert!(agents::list(kdb.reader()).await.expect("list").is_empty());
}

async fn key_rotation_reseals_operator_tokens(db: TestDb) {
    let old = TestKey::new();
    let vault = db.open(&old).await;
    let mut conn = vault.db().writer().await.expect("conn");
    forge::upsert_token(&mut conn, &new_token(&vault, "forgejo", "alice"))
        .await
        .expect("upsert");
    drop(conn);
    vault.db().close().await;
    let new = TestKey::new();
    let vault = keyward::vault::Vault::open_with(
        &db.config(&new, &[&old]),
        keyward::vault::NewKey::Adopt { replace: false },
    )
    .await
    .expect("opens with the previous key");
    let report = vault.rotate_master(&access(), None).await.expect("rotate");
    assert!(report.complete(), "{report:?}");
    assert!(report.resealed >= 1);
    vault.db().close().await;
    let vault = db.open(&new).await;
    let row = forge::get_token(vault.db().reader(), "forgejo")
        .await
        .expect("get")
        .expect("row");
    let k = vault.keyring();
    assert_eq!(
        k.open(&row.access, &oauth_token_aad("forgejo", "access"))
            .expect("opens under the new key")
            .expose(),
        ACCESS
    );
    let refresh = row.refresh.expect("refresh");
    assert_eq!(
        k.open(&refresh, &oauth_token_aad("forgejo", "refresh"))
            .expect("opens")
            .expose(),
        REFRESH
    );
}
