//! A refresh never loses tokens: the forge's answer is kept from the
//! moment it arrives, so a refresh whose lease ran out, or whose host was
//! killed right after the forge answered, is finished (by any host)
//! without spending the old, single-use refresh token again.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use forge_emulator::{Emulator, Flavor};
use reqwest::StatusCode;

use super::support::{TestDb, TestKey};
use super::{client_secret_ref, emulator, ForgeSetup, Host};

fn setup(emu: &Emulator) -> [ForgeSetup<'_>; 1] {
    [ForgeSetup {
        name: "forgejo",
        emulator: emu,
        operators: &["alice"],
    }]
}

/// Waits until some host holds the refresh lease of `forge`.
async fn lease_taken(host: &Host, forge: &str) {
    for _ in 0..200 {
        let held: Option<String> = sqlx::query_scalar(
            "SELECT refresh_holder FROM operator_oauth_tokens WHERE forge_type = $1",
        )
        .bind(forge.to_owned())
        .fetch_one(host.vault.db().reader())
        .await
        .expect("row");
        if held.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nobody took the refresh lease");
}

/// Sets the lease of `forge` to `holder` until `until` (ms), as a host
/// whose lease ran out would find it.
async fn set_lease(host: &Host, forge: &str, holder: Option<&str>, until: Option<i64>) {
    sqlx::query(
        "UPDATE operator_oauth_tokens SET refresh_holder = $1, refresh_until = $2 \
         WHERE forge_type = $3",
    )
    .bind(holder.map(str::to_owned))
    .bind(until)
    .bind(forge.to_owned())
    .execute(&mut *host.vault.db().writer().await.expect("writer"))
    .await
    .expect("lease");
}

async fn a_refresh_whose_lease_ran_out_is_kept(db: TestDb) {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    emu.set_access_token_lifetime(Some(7200));
    emu.add_repos("alice", 1);
    let host = Host::start(&db, &TestKey::new(), &setup(&emu)).await;
    assert_eq!(host.sign_in("forgejo").await.0, StatusCode::OK);
    emu.expire_all_access_tokens();
    emu.set_token_endpoint_delay(Duration::from_millis(1500));
    let forges = host.forges.clone();
    let call = tokio::spawn(async move { forges.repositories(None).await });
    // While the forge works on the refresh, the lease runs out and another
    // host takes it (it has not called the forge yet).
    lease_taken(&host, "forgejo").await;
    let far = keyward::store::now_ms() + 3_600_000;
    set_lease(&host, "forgejo", Some("host-elsewhere"), Some(far)).await;
    call.await
        .expect("joined")
        .expect("the refreshed call goes through");
    set_lease(&host, "forgejo", None, None).await;
    // The forge spent the old refresh token; the next refresh must use
    // the new one, which only the store can hold.
    emu.set_token_endpoint_delay(Duration::ZERO);
    emu.expire_all_access_tokens();
    host.forges
        .repositories(None)
        .await
        .expect("the second refresh uses the refresh token the first one got");
    assert_eq!(emu.refresh_requests(), 2, "one forge refresh per expiry");
}

crate::on_both_backends!(a_refresh_whose_lease_ran_out_is_kept);

/// A `keyward serve` child over `db` configured for `emu`, killed by the
/// fault hook at `kill_at`; answers it and its address.
fn serve_child(
    db: &TestDb,
    key: &TestKey,
    emu: &Emulator,
    kill_at: &str,
) -> (std::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let forges = dir.path().join("forges.toml");
    std::fs::write(
        &forges,
        format!(
            "[forge.forgejo]\nclient_id = {:?}\nclient_secret = {:?}\nbase_url = {:?}\noperators = [\"alice\"]\n",
            Emulator::CLIENT_ID,
            client_secret_ref("forgejo"),
            emu.base_url()
        ),
    )
    .expect("forges file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--listen", "127.0.0.1:0", "--forges"])
        .arg(&forges)
        .env("KEYWARD_DATA_DIR", dir.path())
        .env("KEYWARD_DATABASE_URL", &db.url)
        .env("KEYWARD_MASTER_KEY", key.base64())
        .env("KEYWARD_FAULT_KILL_AT", kill_at)
        .env_remove("KEYWARD_MASTER_KEY_PREVIOUS")
        .env_remove("KEYWARD_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn keyward serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    let addr = first
        .strip_prefix("keyward listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address line: {first:?}"))
        .to_owned();
    (child, addr, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_after_the_forge_answered_loses_nothing() {
    use std::os::unix::process::ExitStatusExt;
    if !keyward::migrate::fault::ENABLED {
        panic!("run with --features keyward/fault-injection (scripts/test does)");
    }
    let emu = emulator(Flavor::Forgejo, "alice").await;
    emu.set_access_token_lifetime(Some(7200));
    emu.add_repos("alice", 1);
    let db = TestDb::postgres().await;
    let key = TestKey::new();
    let b = Host::start(&db, &key, &setup(&emu)).await;
    assert_eq!(b.sign_in("forgejo").await.0, StatusCode::OK);
    let (mut child, addr, _dir) = serve_child(&db, &key, &emu, "refresh-answered");
    emu.expire_all_access_tokens();
    // Host A refreshes for this call and dies between the forge's answer
    // and the write of the new tokens.
    let answer = b
        .client
        .get(format!("{addr}/forge/repos"))
        .bearer_auth(&b.operator)
        .send()
        .await;
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..600 {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    })
    .await
    .expect("joined");
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(9),
        "host A was not killed at refresh-answered: {status:?}, answered {answer:?}"
    );
    assert_eq!(emu.refresh_requests(), 1);
    // Host B finishes A's refresh from the kept answer: no second refresh
    // (the old refresh token is spent), and the new tokens work.
    b.forges
        .repositories(None)
        .await
        .expect("host B finishes the refresh host A started");
    assert_eq!(emu.refresh_requests(), 1, "the forge is not asked again");
    emu.expire_all_access_tokens();
    b.forges
        .repositories(None)
        .await
        .expect("the kept refresh token is the live one");
    assert_eq!(emu.refresh_requests(), 2);
}
