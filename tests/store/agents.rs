//! Agent types and their instances on both backends: round trips, a clean
//! refusal of duplicates, which token an instance uses, what deleting a
//! secret or a type does, and hostile input.

use keyward::store::agents::{self, AgentType};
use keyward::store::secrets;
use keyward::vault::Vault;

use crate::support::{TestDb, TestKey};
use crate::{access, name, scope};

crate::on_both_backends!(
    agent_types_round_trip_and_duplicates_are_refused,
    instances_round_trip_and_their_token_wins,
    deleting_a_secret_unlinks_it_and_deleting_a_type_takes_its_instances,
    hostile_agent_input_is_answered_without_panics,
);

fn agent(name: &str, token_secret_id: Option<i64>, now: i64) -> AgentType {
    AgentType {
        name: name.to_owned(),
        forge: "github".into(),
        base_url: "https://github.example".into(),
        token_secret_id,
        description: "writes code".into(),
        created_at: now,
        updated_at: now,
    }
}

/// Creates `scope_text/FORGE_TOKEN` and answers its row id.
async fn token_secret(vault: &Vault, scope_text: &str) -> i64 {
    vault
        .create(
            &scope(scope_text),
            &name("FORGE_TOKEN"),
            b"tok",
            "",
            &access(),
        )
        .await
        .expect("create secret");
    secret_id(vault.db(), scope_text).await.expect("row")
}

async fn secret_id(kdb: &keyward::store::Db, scope_text: &str) -> Option<i64> {
    secrets::get(kdb.reader(), scope_text, "FORGE_TOKEN")
        .await
        .expect("get")
        .map(|r| r.id)
}

async fn agent_types_round_trip_and_duplicates_are_refused(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    assert!(agents::get(kdb.reader(), "coder")
        .await
        .expect("get")
        .is_none());
    assert!(agents::list(kdb.reader()).await.expect("list").is_empty());
    let id = token_secret(&vault, "agent_type:coder").await;

    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("coder", Some(id), 10)
    )
    .await
    .expect("create"));
    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("reviewer", None, 11)
    )
    .await
    .expect("create"));
    let mut dup = agent("coder", None, 99);
    dup.forge = "gitlab".into();
    assert!(
        !agents::create(&mut kdb.writer().await.expect("writer"), &dup)
            .await
            .expect("a duplicate is no error"),
        "a duplicate is refused"
    );
    let row = agents::get(kdb.reader(), "coder")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        row,
        agent("coder", Some(id), 10),
        "the duplicate changed nothing"
    );
    let names: Vec<_> = agents::list(kdb.reader())
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["coder", "reviewer"]);
    assert_eq!(
        agents::token_secret_for(kdb.reader(), "coder", None)
            .await
            .expect("token"),
        Some((id, "agent_type:coder".into(), "FORGE_TOKEN".into()))
    );
    assert_eq!(
        agents::token_secret_for(kdb.reader(), "reviewer", None)
            .await
            .expect("token"),
        None
    );
    assert_eq!(
        agents::token_secret_for(kdb.reader(), "nobody", None)
            .await
            .expect("token"),
        None
    );

    let mut changed = row.clone();
    changed.forge = "forgejo".into();
    changed.base_url = "https://codeberg.example".into();
    changed.description = String::new();
    changed.token_secret_id = None;
    changed.updated_at = 20;
    assert!(
        agents::update(&mut kdb.writer().await.expect("writer"), &changed)
            .await
            .expect("update")
    );
    assert_eq!(
        agents::get(kdb.reader(), "coder").await.expect("get"),
        Some(changed.clone())
    );
    assert!(!agents::update(
        &mut kdb.writer().await.expect("writer"),
        &agent("nobody", None, 1)
    )
    .await
    .expect("update"));
    assert!(agents::set_token(
        &mut kdb.writer().await.expect("writer"),
        "coder",
        Some(id),
        30
    )
    .await
    .expect("set"));
    let row = agents::get(kdb.reader(), "coder")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        (row.token_secret_id, row.updated_at, row.created_at),
        (Some(id), 30, 10)
    );
    assert!(!agents::set_token(
        &mut kdb.writer().await.expect("writer"),
        "nobody",
        Some(id),
        30
    )
    .await
    .expect("set"));
    // A link to a secret that does not exist is refused by the database.
    assert!(agents::set_token(
        &mut kdb.writer().await.expect("writer"),
        "coder",
        Some(id + 1_000),
        31
    )
    .await
    .is_err());
    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("ghost", Some(id + 1_000), 1)
    )
    .await
    .is_err());

    assert!(
        agents::delete(&mut kdb.writer().await.expect("writer"), "reviewer")
            .await
            .expect("delete")
    );
    assert!(
        !agents::delete(&mut kdb.writer().await.expect("writer"), "reviewer")
            .await
            .expect("delete")
    );
    assert_eq!(agents::list(kdb.reader()).await.expect("list").len(), 1);
}

async fn instances_round_trip_and_their_token_wins(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let type_token = token_secret(&vault, "agent_type:coder").await;
    let own = token_secret(&vault, "instance:i-1").await;
    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("coder", Some(type_token), 1)
    )
    .await
    .expect("create"));
    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("other", None, 1)
    )
    .await
    .expect("create"));

    agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-1",
        "coder",
        Some(own),
        5,
    )
    .await
    .expect("instance");
    agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-2",
        "coder",
        None,
        6,
    )
    .await
    .expect("instance");
    agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-3",
        "other",
        Some(own),
        7,
    )
    .await
    .expect("instance");
    assert!(
        !agents::create_instance(
            &mut kdb.writer().await.expect("writer"),
            "i-1",
            "coder",
            None,
            8
        )
        .await
        .expect("a taken id is an answer, not an error"),
        "an instance id is taken once"
    );
    assert!(
        agents::create_instance(
            &mut kdb.writer().await.expect("writer"),
            "i-9",
            "nobody",
            None,
            8
        )
        .await
        .is_err(),
        "an instance needs its type"
    );
    let i1 = agents::get_instance(kdb.reader(), "i-1")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        (
            i1.agent_type.as_str(),
            i1.token_secret_id,
            i1.created_at,
            i1.updated_at
        ),
        ("coder", Some(own), 5, 5)
    );
    let ids: Vec<_> = agents::list_instances(kdb.reader(), "coder")
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, ["i-1", "i-2"]);

    let type_ref = Some((
        type_token,
        "agent_type:coder".to_owned(),
        "FORGE_TOKEN".to_owned(),
    ));
    let own_ref = Some((own, "instance:i-1".to_owned(), "FORGE_TOKEN".to_owned()));
    let token = |instance: Option<&'static str>, agent: &'static str| {
        let kdb = kdb.clone();
        async move {
            agents::token_secret_for(kdb.reader(), agent, instance)
                .await
                .expect("token")
        }
    };
    assert_eq!(
        token(Some("i-1"), "coder").await,
        own_ref,
        "the override wins"
    );
    assert_eq!(
        token(Some("i-2"), "coder").await,
        type_ref,
        "no override: the type's"
    );
    assert_eq!(
        token(Some("i-404"), "coder").await,
        type_ref,
        "unknown instance: the type's"
    );
    assert_eq!(
        token(Some("i-1"), "other").await,
        None,
        "an instance of another type does not lend its token"
    );
    assert_eq!(token(Some("i-3"), "other").await, own_ref);

    assert!(agents::set_instance_token(
        &mut kdb.writer().await.expect("writer"),
        "i-2",
        Some(own),
        9
    )
    .await
    .expect("set"));
    assert_eq!(token(Some("i-2"), "coder").await, own_ref);
    assert!(
        agents::set_instance_token(&mut kdb.writer().await.expect("writer"), "i-2", None, 10)
            .await
            .expect("set")
    );
    assert_eq!(token(Some("i-2"), "coder").await, type_ref);
    assert!(!agents::set_instance_token(
        &mut kdb.writer().await.expect("writer"),
        "i-404",
        None,
        10
    )
    .await
    .expect("set"));

    assert!(
        agents::delete_instance(&mut kdb.writer().await.expect("writer"), "i-1")
            .await
            .expect("delete")
    );
    assert!(
        !agents::delete_instance(&mut kdb.writer().await.expect("writer"), "i-1")
            .await
            .expect("delete")
    );
    assert!(agents::get_instance(kdb.reader(), "i-1")
        .await
        .expect("get")
        .is_none());
    assert_eq!(token(Some("i-1"), "coder").await, type_ref);
}

async fn deleting_a_secret_unlinks_it_and_deleting_a_type_takes_its_instances(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let type_token = token_secret(&vault, "agent_type:coder").await;
    let own = token_secret(&vault, "instance:i-1").await;
    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("coder", Some(type_token), 1)
    )
    .await
    .expect("create"));
    agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-1",
        "coder",
        Some(own),
        1,
    )
    .await
    .expect("instance");

    // A soft-deleted token is no token while it is deleted, and is again
    // once undeleted: the link stays.
    let instance_token = || async {
        agents::token_secret_for(kdb.reader(), "coder", Some("i-1"))
            .await
            .expect("token")
            .map(|(_, scope, _)| scope)
    };
    vault
        .delete(&scope("instance:i-1"), &name("FORGE_TOKEN"), &access())
        .await
        .expect("soft delete");
    assert_eq!(instance_token().await.as_deref(), Some("agent_type:coder"));
    vault
        .undelete(&scope("instance:i-1"), &name("FORGE_TOKEN"), &access())
        .await
        .expect("undelete");
    assert_eq!(instance_token().await.as_deref(), Some("instance:i-1"));

    // Destroyed, the row is gone and the link is cleared by the schema.
    vault
        .destroy(&scope("instance:i-1"), &name("FORGE_TOKEN"), &access())
        .await
        .expect("destroy secret");
    let i1 = agents::get_instance(kdb.reader(), "i-1")
        .await
        .expect("get")
        .expect("the instance stays");
    assert_eq!(i1.token_secret_id, None, "ON DELETE SET NULL");
    assert_eq!(
        agents::token_secret_for(kdb.reader(), "coder", Some("i-1"))
            .await
            .expect("token"),
        Some((type_token, "agent_type:coder".into(), "FORGE_TOKEN".into())),
        "back to the type's token"
    );
    vault
        .destroy(&scope("agent_type:coder"), &name("FORGE_TOKEN"), &access())
        .await
        .expect("destroy secret");
    let row = agents::get(kdb.reader(), "coder")
        .await
        .expect("get")
        .expect("the type stays");
    assert_eq!(row.token_secret_id, None);
    assert_eq!(
        agents::token_secret_for(kdb.reader(), "coder", Some("i-1"))
            .await
            .expect("token"),
        None
    );
    // A secret of the same name made again is a new row: not linked by itself.
    token_secret(&vault, "agent_type:coder").await;
    assert_eq!(
        agents::token_secret_for(kdb.reader(), "coder", None)
            .await
            .expect("token"),
        None
    );

    // The schema cascades by itself (a plain DELETE, not agents::delete).
    agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-2",
        "coder",
        None,
        2,
    )
    .await
    .expect("instance");
    sqlx::query("DELETE FROM agent_type WHERE name = $1")
        .bind("coder")
        .execute(&mut *kdb.writer().await.expect("writer"))
        .await
        .expect("delete type");
    assert!(agents::get_instance(kdb.reader(), "i-1")
        .await
        .expect("get")
        .is_none());
    assert!(agents::get_instance(kdb.reader(), "i-2")
        .await
        .expect("get")
        .is_none());
    // And through the store function.
    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("coder", None, 3)
    )
    .await
    .expect("create"));
    agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-3",
        "coder",
        None,
        3,
    )
    .await
    .expect("instance");
    assert!(
        agents::delete(&mut kdb.writer().await.expect("writer"), "coder")
            .await
            .expect("delete")
    );
    assert!(agents::list_instances(kdb.reader(), "coder")
        .await
        .expect("list")
        .is_empty());
    assert!(agents::get_instance(kdb.reader(), "i-3")
        .await
        .expect("get")
        .is_none());
}

async fn hostile_agent_input_is_answered_without_panics(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let long = "x".repeat(100_000);
    let noisy: String = (0..3_000u32)
        .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20_000).unwrap_or('x'))
        .collect();
    for text in [
        "",
        " ",
        "'); DELETE FROM agent_type; --",
        "ünï/cødé 🤖",
        "a\u{0}b",
        long.as_str(),
        noisy.as_str(),
    ] {
        assert!(agents::get(kdb.reader(), text)
            .await
            .map(|r| r.is_none())
            .unwrap_or(true));
        assert!(agents::get_instance(kdb.reader(), text)
            .await
            .map(|r| r.is_none())
            .unwrap_or(true));
        assert!(agents::token_secret_for(kdb.reader(), text, Some(text))
            .await
            .map(|r| r.is_none())
            .unwrap_or(true));
        assert!(
            !agents::delete(&mut kdb.writer().await.expect("writer"), text)
                .await
                .unwrap_or(false)
        );
        assert!(
            !agents::delete_instance(&mut kdb.writer().await.expect("writer"), text)
                .await
                .unwrap_or(false)
        );
        // Stored exactly, or refused with an error (PostgreSQL text holds no
        // NUL; an index entry has a size limit) — never a panic.
        let mut row = agent(text, None, 1);
        row.description = text.to_owned();
        row.base_url = text.to_owned();
        if agents::create(&mut kdb.writer().await.expect("writer"), &row)
            .await
            .unwrap_or(false)
        {
            assert_eq!(
                agents::get(kdb.reader(), text).await.expect("get"),
                Some(row)
            );
            if agents::create_instance(
                &mut kdb.writer().await.expect("writer"),
                text,
                text,
                None,
                1,
            )
            .await
            .is_ok()
            {
                assert_eq!(
                    agents::list_instances(kdb.reader(), text)
                        .await
                        .expect("list")
                        .len(),
                    1
                );
            }
            assert!(
                agents::delete(&mut kdb.writer().await.expect("writer"), text)
                    .await
                    .expect("delete")
            );
        }
    }
    assert!(agents::create(
        &mut kdb.writer().await.expect("writer"),
        &agent("coder", None, 1)
    )
    .await
    .expect("still works"));
    assert_eq!(agents::list(kdb.reader()).await.expect("list").len(), 1);
}
