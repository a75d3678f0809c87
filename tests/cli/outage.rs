//! Availability under faults, with the real binary under render load:
//! PostgreSQL stopped (cleanly, and crash-stopped) for a few seconds, and
//! a disk that fills up under SQLite and under PostgreSQL. Each asserts: prompt 503s (never a hang),
//! renders back within a bound of the cause going away, `/readyz` telling
//! the truth, `/healthz` never waiting, no 200 without its log row, and an
//! intact chain after.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::kw::Served;
use crate::support::own_postgres::OwnPostgres;
use crate::{text, Kw};

/// Concurrent render loops.
const CLIENTS: usize = 6;

/// One answered (or failed) render.
#[derive(Clone, Copy, Debug)]
struct Sample {
    sent: Instant,
    took: Duration,
    /// HTTP status, or 0 if no answer came at all.
    status: u16,
}

struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: &str, token: &str) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let tasks = (0..CLIENTS)
            .map(|_| {
                let (stop, samples, client) = (stop.clone(), samples.clone(), client.clone());
                let url = format!("http://{addr}/render");
                let token = token.to_owned();
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let sent = Instant::now();
                        let status = client
                            .post(&url)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(r#"{"template": "v=${SECRET:OUTAGE}", "reason": "outage test"}"#)
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        samples.lock().expect("samples").push(Sample {
                            sent,
                            took: sent.elapsed(),
                            status,
                        });
                        if status != 200 {
                            // Not a tight loop of refusals.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            tasks,
        }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let samples = self.samples.lock().expect("samples").clone();
        samples
    }
}

async fn status_of(addr: &str, path: &str) -> (u16, Duration) {
    let sent = Instant::now();
    let status = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, sent.elapsed())
}

/// Polls `path` until it answers `want`; the time that took.
async fn until(addr: &str, path: &str, want: u16, within: Duration) -> Duration {
    let since = Instant::now();
    loop {
        if status_of(addr, path).await.0 == want {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "{path} did not answer {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A served store with the secret `OUTAGE` and a resolver token.
fn serve(kw: &Kw) -> (Served, String) {
    let _ = kw.ok(&["secret", "set", "OUTAGE"], b"outage-value");
    let token = kw.token("load", "resolver");
    (kw.serve("serve.log"), token)
}

/// Renders answered 200 must each have their `render ok` row, and the chain
/// must verify.
fn assert_log_matches(kw: &Kw, samples: &[Sample]) {
    let ok = samples.iter().filter(|s| s.status == 200).count();
    let rows = kw.ok(&["audit", "tail", "-n", "100000", "--json"], b"");
    let logged = rows
        .lines()
        .filter(|l| l.contains(r#""action":"render""#) && l.contains(r#""outcome":"ok""#))
        .count();
    assert!(
        logged >= ok,
        "{ok} renders answered 200 but only {logged} render rows are in the log"
    );
    let verify = kw.ok(&["audit", "verify"], b"");
    assert!(verify.starts_with("OK: "), "{verify}");
}

async fn postgres_outage(mode: &str) {
    let pg = OwnPostgres::start();
    let kw = Kw {
        database_url: Some(pg.url.clone()),
        ..Kw::new()
    };
    let (served, token) = serve(&kw);
    let addr = served.addr.clone();
    assert_eq!(status_of(&addr, "/readyz").await.0, 200);
    let load = Load::start(&addr, &token);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let pg_down = tokio::task::block_in_place(|| {
        pg.down(mode);
        Instant::now()
    });
    // Readiness says so within a second; liveness never waits.
    let not_ready = until(&addr, "/readyz", 503, Duration::from_secs(5)).await;
    assert!(
        not_ready < Duration::from_secs(1),
        "/readyz took {not_ready:?}"
    );
    let (health, took) = status_of(&addr, "/healthz").await;
    assert_eq!(health, 200);
    // Under the bound of anything that touches the database (a connect
    // gives up after 500 ms), with room for a busy CI machine.
    assert!(took < Duration::from_millis(450), "/healthz took {took:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The server may take connections a little before `pg_ctl start`
    // returns: the outage ends, for the assertions, when the start begins.
    let up_began = Instant::now();
    let pg_up = tokio::task::block_in_place(|| {
        pg.up();
        Instant::now()
    });
    let ready = until(&addr, "/readyz", 200, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let samples = load.finish().await;

    // During the outage (after the first half second, when the stop had
    // surely landed): answers, not hangs — 503s, each within the bound.
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent > pg_down + Duration::from_millis(500) && s.sent + s.took < up_began)
        .collect();
    assert!(
        during.len() >= CLIENTS,
        "too few requests during the outage: {}",
        during.len()
    );
    assert!(
        during.iter().all(|s| s.status == 503),
        "not all 503 during the outage: {:?}",
        during.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    let slowest = during.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(
        slowest <= Duration::from_millis(2500),
        "a request hung {slowest:?} during the outage"
    );
    let mut took: Vec<Duration> = during.iter().map(|s| s.took).collect();
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median <= Duration::from_millis(500),
        "median 503 took {median:?}"
    );
    // Back within a second of the database.
    let first_ok = samples
        .iter()
        .filter(|s| s.status == 200 && s.sent >= pg_up)
        .map(|s| s.sent + s.took)
        .min()
        .expect("renders came back");
    let recovery = first_ok.saturating_duration_since(pg_up);
    assert!(
        recovery <= Duration::from_secs(1),
        "renders came back {recovery:?} after PostgreSQL"
    );
    assert!(
        ready <= Duration::from_secs(1),
        "/readyz took {ready:?} to recover"
    );
    drop(served);
    assert_log_matches(&kw, &samples);
    eprintln!(
        "PostgreSQL {mode} stop: {} requests during the outage, median 503 in {median:?}, slowest {slowest:?}; \
         renders back {recovery:?} after the server, /readyz 503 after {not_ready:?}, 200 after {ready:?}",
        during.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_gives_prompt_503s_and_renders_come_back_at_once() {
    postgres_outage("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_stop_gives_prompt_503s_and_renders_come_back_at_once() {
    postgres_outage("immediate").await;
}

/// A small tmpfs for the SQLite store, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("mount point");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs a small tmpfs to fill (root, or a machine that allows \
             mounting one): mount said {}",
            text(&out.stderr)
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the disk at `dir` with `filler`, leaving nothing free.
fn fill(filler: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).expect("filler");
    let block = vec![0u8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_503s_and_renders_come_back_when_space_is_freed() {
    let disk = SmallDisk::mount(48);
    let data = disk.dir.path().join("data");
    let kw = Kw {
        database_url: Some(format!("sqlite://{}", data.join("keyward.db").display())),
        ..Kw::new()
    };
    full_disk(&kw, &disk, "SQLite").await;
}

/// PostgreSQL's data disk full: the server refuses every write that needs
/// a new page, and Keyward must treat that as it treats an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_postgres_disk_gives_503s_and_renders_come_back_when_space_is_freed() {
    let disk = SmallDisk::mount(64);
    // The server runs as `postgres`: it must reach its folder on the disk.
    std::fs::set_permissions(
        disk.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the disk");
    let pg = OwnPostgres::start_on(disk.dir.path());
    let kw = Kw {
        database_url: Some(pg.url.clone()),
        ..Kw::new()
    };
    full_disk(&kw, &disk, "PostgreSQL").await;
    drop(pg);
}

/// Renders under load while `disk` (where `kw`'s store lives) is filled for
/// three seconds, then freed: prompt 503s while full, 200s within a second
/// of space coming back, a log row for every 200 and an intact chain.
async fn full_disk(kw: &Kw, disk: &SmallDisk, store: &str) {
    let (served, token) = serve(kw);
    let addr = served.addr.clone();
    let load = Load::start(&addr, &token);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let filler = disk.dir.path().join("filler");
    let full = tokio::task::block_in_place(|| {
        fill(&filler);
        Instant::now()
    });
    // Keep filling what the WAL truncations give back, so the disk stays
    // full for the whole window.
    let refill_until = full + Duration::from_secs(3);
    while Instant::now() < refill_until {
        tokio::task::block_in_place(|| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&filler)
                .expect("filler");
            let block = vec![0u8; 4096];
            while f.write_all(&block).is_ok() {}
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (health, took) = status_of(&addr, "/healthz").await;
    assert_eq!(health, 200);
    // Under the bound of anything that touches the database (a connect
    // gives up after 500 ms), with room for a busy CI machine.
    assert!(took < Duration::from_millis(450), "/healthz took {took:?}");

    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let samples = load.finish().await;

    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent > full + Duration::from_millis(500) && s.sent + s.took < refill_until)
        .collect();
    let refused = during.iter().filter(|s| s.status == 503).count();
    assert!(refused > 0, "no 503 while the disk was full");
    assert!(
        during.iter().all(|s| s.status == 503 || s.status == 200),
        "{:?}",
        during.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    let slowest = during.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(
        slowest <= Duration::from_millis(2500),
        "a request hung {slowest:?}"
    );
    let first_ok = samples
        .iter()
        .filter(|s| s.status == 200 && s.sent >= freed)
        .map(|s| s.sent + s.took)
        .min()
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(kw.dir.path().join("serve.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{store}: renders did not come back after space was freed; the server's log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        });
    let recovery = first_ok.saturating_duration_since(freed);
    assert!(
        recovery <= Duration::from_secs(1),
        "renders came back {recovery:?} after space was freed"
    );
    let last_second: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent > freed + Duration::from_secs(1))
        .collect();
    assert!(
        last_second.iter().all(|s| s.status == 200),
        "still refused after space came back: {:?}",
        last_second.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    drop(served);
    assert_log_matches(kw, &samples);
    eprintln!(
        "{store} full disk: {refused} of {} requests refused while full (slowest {slowest:?}); renders back {recovery:?} after space was freed",
        during.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_hosts_under_load_loses_no_row_and_the_other_serves_on() {
    let pg = OwnPostgres::start();
    let kw = Kw {
        database_url: Some(pg.url.clone()),
        ..Kw::new()
    };
    let (mut first, token) = serve(&kw);
    let second = kw.serve("serve-2.log");
    let on_first = Load::start(&first.addr, &token);
    let on_second = Load::start(&second.addr, &token);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.child.kill().expect("kill -9 the first host");
    let killed = Instant::now();
    first.child.wait().expect("reaped");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut samples = on_first.finish().await;
    let others = on_second.finish().await;
    // The other host never stopped serving.
    let after: Vec<&Sample> = others.iter().filter(|s| s.sent > killed).collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|s| s.status == 200),
        "the surviving host refused: {:?}",
        after.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    samples.extend(others);
    drop(second);
    // Every 200 either host gave has its row; the chain is whole although
    // a host died in the middle of its groups.
    assert_log_matches(&kw, &samples);
}
