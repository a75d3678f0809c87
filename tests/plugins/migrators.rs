//! A migrator that misbehaves (tests/fixtures/plugins/hostile-migrator),
//! driven by the real migration driver: every misdeed fails the items it
//! touches (or the run, for discovery), with a reason; nothing is lost,
//! nothing is deleted that the host did not write, and the host goes on.

use keyward::migrate::{self, Quiet, Request, Status};
use keyward::names::{Scope, SecretName};
use keyward::runtime::MigrationSource;

use crate::{access, Host};

async fn host() -> Host {
    let host = Host::with(&["hostile-migrator", "echo-forge"]).await;
    host.vault
        .create(
            &Scope::global(),
            &SecretName::parse("VICTIM").expect("name"),
            b"victim-value",
            "must survive",
            &access(),
        )
        .await
        .expect("create victim");
    host
}

async fn run(host: &Host, mode: &str) -> Result<migrate::Report, migrate::MigrateError> {
    let source = MigrationSource {
        options: vec![("mode".into(), mode.into())],
        ..MigrationSource::default()
    };
    let mut request = Request::new("hostile-migrator", source, "test:migrate");
    request.shown_source = Some(format!("hostile:{mode}"));
    migrate::run(&host.vault, &host.rt, &request, &Quiet).await
}

fn status<'a>(report: &'a migrate::Report, id: &str) -> &'a Status {
    &report
        .items
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no item {id}: {:?}", report.items))
        .status
}

fn failed_with(report: &migrate::Report, id: &str, says: &str) {
    match status(report, id) {
        Status::Failed(reason) => assert!(reason.contains(says), "{id}: {reason}"),
        other => panic!("{id}: {other:?}"),
    }
}

async fn victim_intact(host: &Host) {
    let (_, value) = crate::reveal_as_test(&host.vault, "global/VICTIM").await;
    assert_eq!(value, b"victim-value");
}

#[tokio::test]
async fn a_migrator_cannot_claim_the_hosts_rename_ids_to_delete_a_secret() {
    let host = host().await;
    let report = run(&host, "reserved").await.expect("run");
    failed_with(&report, "rename:global/VICTIM", "host's");
    failed_with(&report, "sneaky", "host's");
    assert!(!report.ok());
    victim_intact(&host).await;
    for name in ["STOLEN", "SNEAKY"] {
        assert!(host
            .vault
            .meta(&Scope::global(), &SecretName::parse(name).expect("name"))
            .await
            .is_err());
    }
    host.still_serves().await;
}

#[tokio::test]
async fn malformed_and_colliding_targets_fail_one_by_one() {
    let host = host().await;
    let report = run(&host, "targets").await.expect("run");
    failed_with(&report, "bad", "invalid target");
    failed_with(&report, "twin-a", "two items with one target");
    failed_with(&report, "twin-b", "two items with one target");
    failed_with(&report, "occupied", "another value");
    failed_with(&report, "nul\0id", "control characters");
    // Two items with one id: the first goes, the second is refused.
    let fines: Vec<&Status> = report
        .items
        .iter()
        .filter(|i| i.id == "fine")
        .map(|i| &i.status)
        .collect();
    assert_eq!(fines.len(), 2);
    // The first is written, but its unit (shared with the refused twin)
    // stays: nothing is retired while an item of it failed.
    assert!(
        matches!(fines[0], Status::WrittenNotRetired(_)),
        "{fines:?}"
    );
    assert!(matches!(fines[1], Status::Failed(r) if r.contains("two items with id")));
    victim_intact(&host).await;
    // The description's escape sequence is stored without its control byte.
    let meta = host
        .vault
        .meta(&Scope::global(), &SecretName::parse("FINE").expect("name"))
        .await
        .expect("written");
    assert!(
        !meta.description.chars().any(char::is_control),
        "{:?}",
        meta.description
    );
}

#[tokio::test]
async fn empty_oversized_and_trapping_reads_fail_their_items() {
    let host = host().await;
    let before = host.vault.list(None).await.expect("list").len();
    let report = run(&host, "values").await.expect("run");
    failed_with(&report, "one", "empty value");
    failed_with(&report, "two", "larger than");
    let report = run(&host, "trap").await.expect("run");
    failed_with(&report, "one", "read failed");
    failed_with(&report, "two", "read failed");
    assert!(
        host.vault.list(None).await.expect("list").len() == before,
        "only the victim"
    );
    host.still_serves().await;
}

#[tokio::test]
async fn a_refused_retire_keeps_the_items_written_and_the_run_open() {
    let host = host().await;
    let report = run(&host, "retire-fails").await.expect("run");
    for id in ["one", "two"] {
        assert!(
            matches!(status(&report, id), Status::WrittenNotRetired(r) if r.contains("refused on purpose")),
            "{id}: {:?}",
            status(&report, id)
        );
    }
    assert!(!report.ok());
    let (_, value) = crate::reveal_as_test(&host.vault, "global/ONE").await;
    assert_eq!(value, b"value-of-one");
    // Not recorded as finished: the same run again tries the retire again.
    let again = run(&host, "retire-fails").await.expect("run");
    assert!(again.already.is_none());
}

#[tokio::test]
async fn a_failed_discovery_fails_the_run_and_changes_nothing() {
    let host = host().await;
    let before = host.vault.list(None).await.expect("list").len();
    let err = run(&host, "discover-fails").await.expect_err("refused");
    assert!(
        err.to_string().contains("discovery refused on purpose"),
        "{err}"
    );
    assert_eq!(host.vault.list(None).await.expect("list").len(), before);
    host.still_serves().await;
}
