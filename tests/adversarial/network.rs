//! A plugin cannot exhaust the host, network edition: it cannot reach a
//! cloud metadata service or a private network however the address is
//! spelled; an unauthenticated sign-in flood cannot take the instance pool
//! or the `oauth_pending` table; and a release build has no fault hook.

use std::collections::HashMap;
use std::net::IpAddr;

use keyward::runtime::{BaseUrl, PluginError, ReturnedError};

use crate::harness::{reference, Sandbox};

/// The token echo-forge would send (it never gets that far).
const TOKEN: &str = "agent-token";

/// For each address, echo-forge's whoami is pointed at it twice — through a
/// name pinned to it and through the address literal — and each attempt must
/// be denied before a connection is made, logged as a denied fetch, with no
/// token expanded for it.
async fn assert_unreachable(addresses: &[&str]) {
    let parsed: Vec<IpAddr> = addresses
        .iter()
        .map(|a| a.parse().expect("a test address"))
        .collect();
    let hosts: HashMap<String, Vec<IpAddr>> = parsed
        .iter()
        .enumerate()
        .map(|(i, ip)| (format!("target{i}.test"), vec![*ip]))
        .collect();
    let sandbox = Sandbox::new(&["echo-forge"], |_, m| m, hosts).await;
    sandbox.secret(TOKEN, b"agent-token-value").await;
    for (i, ip) in parsed.iter().enumerate() {
        let literal = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        for host in [format!("target{i}.test"), literal] {
            let base = format!("https://{host}:8443");
            let err = sandbox
                .rt
                .forge_whoami(
                    &sandbox.vault,
                    "echo-forge",
                    &BaseUrl::parse(&base).expect("a base URL"),
                    &reference(TOKEN),
                )
                .await
                .expect_err("the host must refuse the address");
            match &err {
                PluginError::Returned {
                    error: ReturnedError::Denied(why),
                    ..
                } => assert!(
                    why.contains("KEYWARD_EGRESS_ALLOW") || why.contains("plugins may never reach"),
                    "{ip} via {host}: {why}"
                ),
                other => {
                    panic!("{ip} via {host}: expected a denial before connecting, got {other}")
                }
            }
        }
    }
    let rows = sandbox.rows_of("echo-forge").await;
    let denied = rows
        .iter()
        .filter(|r| r.action == "fetch" && r.outcome == "denied")
        .count();
    assert_eq!(denied, 2 * addresses.len(), "{rows:?}");
    assert!(!rows.iter().any(|r| r.action == "egress"), "{rows:?}");
}

#[tokio::test]
async fn a_plugin_cannot_reach_cloud_metadata_through_ipv6_unique_local() {
    // AWS's IPv6 metadata service, its pod-identity agent, GCP's, and any
    // other unique-local network.
    assert_unreachable(&[
        "fd00:ec2::254",
        "fd00:ec2::23",
        "fd20:ce::254",
        "fd12:3456:789a::1",
        "fc00::1",
        "fec0::1",
    ])
    .await;
}

#[tokio::test]
async fn a_plugin_cannot_reach_cloud_metadata_through_cgnat_shared_space() {
    // Alibaba Cloud's metadata service lives in 100.64.0.0/10.
    assert_unreachable(&["100.100.100.200", "100.64.0.1", "100.127.255.254"]).await;
}

#[tokio::test]
async fn a_plugin_cannot_reach_cloud_metadata_or_link_local() {
    assert_unreachable(&[
        "169.254.169.254",
        "169.254.170.2",
        "168.63.129.16",
        "fe80::1",
    ])
    .await;
}

#[tokio::test]
async fn a_plugin_cannot_reach_a_private_network() {
    assert_unreachable(&["10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1"]).await;
}

#[tokio::test]
async fn a_plugin_cannot_reach_a_private_network_through_nat64_or_6to4() {
    assert_unreachable(&[
        "64:ff9b::10.0.0.1",
        "64:ff9b::169.254.169.254",
        "64:ff9b::127.0.0.1",
        "64:ff9b:1::8c52:7003",
        "2002:c0a8:0101::1",
        "2002:a9fe:a9fe::1",
        "2002:0a00:0001::1",
    ])
    .await;
}

#[tokio::test]
async fn a_plugin_cannot_reach_a_private_network_through_ipv4_mapped_or_compatible_ipv6() {
    assert_unreachable(&[
        "::ffff:10.0.0.1",
        "::ffff:192.168.1.1",
        "::ffff:100.100.100.200",
        "::ffff:127.0.0.1",
        "::10.0.0.1",
        "::169.254.169.254",
    ])
    .await;
}

#[tokio::test]
async fn a_plugin_cannot_reach_the_rest_of_the_special_purpose_registry() {
    assert_unreachable(&[
        "0.1.2.3",
        "192.0.0.9",
        "192.0.2.1",
        "192.88.99.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.7",
        "240.0.0.1",
        "100::1",
        "2001::1",
        "2001:db8::1",
        "3fff::1",
        "5f00::1",
    ])
    .await;
}

/// A forge the operator opened with `KEYWARD_EGRESS_ALLOW` is reachable;
/// the same list never opens a metadata address; a malformed list stops
/// the command. Through the real binary: the list is process configuration.
#[test]
fn the_operator_allow_list_opens_a_private_forge_but_never_cloud_metadata() {
    use crate::support::kw::{code, text, Kw};
    let kw = Kw::new();
    // A port nothing listens on: reached, the call fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // Loopback spelled as an IPv4-mapped address is not a loopback origin.
    let private = format!("https://[::ffff:127.0.0.1]:{port}");
    kw.ok(
        &[
            "agent-type",
            "add",
            "coder",
            "--forge",
            "forgejo",
            "--base-url",
            &private,
        ],
        b"",
    );
    kw.ok(&["agent-type", "set-token", "coder"], b"agent-token-value");
    kw.ok(
        &[
            "agent-type",
            "add",
            "meta",
            "--forge",
            "forgejo",
            "--base-url",
            "https://169.254.169.254",
        ],
        b"",
    );
    kw.ok(&["agent-type", "set-token", "meta"], b"agent-token-value");
    let dispatch = |name: &str, allow: Option<&str>| {
        let mut cmd = kw.cmd(&["agent-type", "dispatch", name]);
        match allow {
            Some(list) => cmd.env("KEYWARD_EGRESS_ALLOW", list),
            None => cmd.env_remove("KEYWARD_EGRESS_ALLOW"),
        };
        crate::support::kw::run_with(cmd, b"")
    };

    let refused = dispatch("coder", None);
    let err = text(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("KEYWARD_EGRESS_ALLOW"),
        "the refusal names the opt-in: {err}"
    );

    let opened = dispatch("coder", Some("10.20.0.0/16, 127.0.0.0/8"));
    let err = text(&opened.stderr);
    assert!(!opened.status.success(), "nothing listens there: {err}");
    assert!(
        !err.contains("KEYWARD_EGRESS_ALLOW") && !err.contains("may not reach"),
        "the allow list must let the request through: {err}"
    );

    let metadata = dispatch("meta", Some("169.254.0.0/16,fd00::/8,100.64.0.0/10"));
    let err = text(&metadata.stderr);
    assert!(!metadata.status.success(), "{err}");
    assert!(err.contains("never"), "metadata stays closed: {err}");

    let malformed = dispatch("coder", Some("10.0.0.0/33"));
    assert_eq!(code(&malformed), 78, "{}", text(&malformed.stderr));
    assert!(text(&malformed.stderr).contains("KEYWARD_EGRESS_ALLOW"));
}

mod sign_in {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use keyward::forge::{ForgeApps, Forges};
    use keyward::http::throttle::{SignInLimits, SIGN_IN_BURST};
    use keyward::runtime::{BaseUrl, PluginError};
    use reqwest::StatusCode;

    use crate::harness::{reference, Sandbox};
    use crate::support::{TestDb, TestKey};

    const FORGE: &str = "slow-signin";

    /// A forge whose `/slow` answers after `delay`: its base URL, and how
    /// many requests it is holding now.
    async fn slow_forge(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let holding = Arc::new(AtomicUsize::new(0));
        let count = holding.clone();
        let app = axum::Router::new().route(
            "/slow",
            axum::routing::get(move || {
                let count = count.clone();
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    count.fetch_sub(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        (serve(app).await, holding)
    }

    /// Waits until `holding` has stopped growing (the flood holds all the
    /// instances it can get); how many it holds.
    async fn plateau(holding: &AtomicUsize) -> usize {
        let mut last = 0;
        let mut still = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = holding.load(Ordering::SeqCst);
            if now == last && now > 0 {
                still += 1;
                if still >= 6 {
                    break;
                }
            } else {
                still = 0;
                last = now;
            }
        }
        last
    }

    /// Serves `app` on 127.0.0.1; its base URL.
    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn apps(forge: &str) -> ForgeApps {
        ForgeApps::parse(
            &format!(
                "[forge.{FORGE}]\nclient_id = \"keyward\"\nbase_url = {forge:?}\noperators = [\"operator\"]\n"
            ),
            "http://127.0.0.1:8080",
        )
        .expect("forges config")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client")
    }

    /// A login: its status and `Retry-After`.
    async fn login(client: &reqwest::Client, host: &str) -> (StatusCode, Option<u64>) {
        let r = client
            .get(format!("{host}/auth/{FORGE}/login"))
            .send()
            .await
            .expect("login answered");
        let retry = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (r.status(), retry)
    }

    async fn pending_rows(kdb: &keyward::store::Db) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM oauth_pending")
            .fetch_one(kdb.reader())
            .await
            .expect("count pending")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_unauthenticated_login_flood_gets_429_and_leaves_the_pool_to_operators() {
        let sandbox = Sandbox::new(&[FORGE], |_, m| m, HashMap::new()).await;
        sandbox.secret(super::TOKEN, b"agent-token-value").await;
        let (forge, holding) = slow_forge(Duration::from_secs(4)).await;
        let forges = Forges::new(
            sandbox.vault.clone(),
            Some(sandbox.rt.clone()),
            apps(&forge),
        );
        let host = serve(keyward::http::router_with(
            sandbox.vault.clone(),
            Some(sandbox.rt.clone()),
            Some(forges),
            Default::default(),
        ))
        .await;
        let client = client();
        // More sign-in starts at once than the runtime has instances.
        let flood: Vec<_> = (0..100)
            .map(|_| {
                let (client, host) = (client.clone(), host.clone());
                tokio::spawn(async move { login(&client, &host).await })
            })
            .collect();
        // While the flood holds all the instances it can, operators' calls run.
        let held = plateau(&holding).await;
        assert!(
            held <= keyward::http::throttle::UNAUTHENTICATED_CALLS as usize,
            "a flood holds {held} plugin instances"
        );
        let base = BaseUrl::parse(&forge).expect("base URL");
        let calls: Vec<_> = (0..32)
            .map(|_| {
                let (rt, vault, base) = (sandbox.rt.clone(), sandbox.vault.clone(), base.clone());
                tokio::spawn(async move {
                    rt.forge_whoami(&vault, FORGE, &base, &reference(super::TOKEN))
                        .await
                })
            })
            .collect();
        for call in calls {
            match call.await.expect("call task") {
                Ok(account) => assert_eq!(account.login, "operator"),
                Err(PluginError::Busy) => {
                    panic!("an authenticated call found the pool full during a sign-in flood")
                }
                Err(e) => panic!("an authenticated call failed: {e}"),
            }
        }
        let mut answers = Vec::new();
        for f in flood {
            answers.push(f.await.expect("login task"));
        }
        let started = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::SEE_OTHER)
            .count();
        let limited: Vec<_> = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
            .collect();
        assert!(!limited.is_empty(), "no 429 in a flood: {answers:?}");
        assert!(
            limited
                .iter()
                .all(|(_, retry)| retry.is_some_and(|r| r >= 1)),
            "every 429 says when to retry: {answers:?}"
        );
        assert_eq!(
            started + limited.len(),
            answers.len(),
            "a flood gets 303 or 429, nothing else: {answers:?}"
        );
        assert!(
            started <= SIGN_IN_BURST as usize,
            "{started} sign-ins started"
        );
        assert!(pending_rows(sandbox.vault.db()).await <= i64::from(SIGN_IN_BURST));
    }

    #[tokio::test]
    async fn a_login_flood_across_hosts_cannot_fill_oauth_pending() {
        let sandbox = Sandbox::new(&[FORGE], |_, m| m, HashMap::new()).await;
        let (forge, _) = slow_forge(Duration::ZERO).await;
        // Two hosts on one PostgreSQL database, generous rates, a small cap.
        let db = TestDb::postgres().await;
        let key = TestKey::new();
        let limits = SignInLimits {
            burst: 1000,
            per_second: 1000,
            max_pending: 10,
            ..SignInLimits::default()
        };
        let mut hosts = Vec::new();
        let mut vaults = Vec::new();
        for _ in 0..2 {
            let vault = db.open(&key).await;
            let forges = Forges::new(vault.clone(), Some(sandbox.rt.clone()), apps(&forge));
            hosts.push(
                serve(keyward::http::router_with_limits(
                    vault.clone(),
                    Some(sandbox.rt.clone()),
                    Some(forges),
                    Default::default(),
                    limits,
                ))
                .await,
            );
            vaults.push(vault);
        }
        let client = client();
        for i in 0..30 {
            let (status, retry) = login(&client, &hosts[i % 2]).await;
            if i < 10 {
                assert_eq!(status, StatusCode::SEE_OTHER, "sign-in {i}");
            } else {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "sign-in {i}");
                assert!(
                    retry.is_some_and(|r| (1..=600).contains(&r)),
                    "Retry-After until the first pending sign-in expires: {retry:?}"
                );
            }
        }
        assert_eq!(pending_rows(vaults[0].db()).await, 10);
    }
}

/// Release binaries carry no fault hook: the hook's own source, compiled
/// the way a release build compiles it (without the `fault-injection`
/// feature), ignores `KEYWARD_FAULT_KILL_AT`; compiled with the feature the
/// same probe dies, so the probe can tell. And nothing that builds a
/// release turns the feature on.
#[test]
fn release_builds_have_no_fault_hook() {
    let root = crate::fixtures::root();
    let manifest = std::fs::read_to_string(root.join("host/Cargo.toml")).expect("host/Cargo.toml");
    let cargo: toml::Value = toml::from_str(&manifest).expect("host/Cargo.toml parses");
    let features = cargo
        .get("features")
        .expect("host/Cargo.toml has [features]");
    assert!(
        features.get("fault-injection").is_some(),
        "the hook sits behind a `fault-injection` feature"
    );
    let default = features
        .get("default")
        .and_then(|d| d.as_array())
        .expect("default features");
    assert!(
        !default
            .iter()
            .any(|f| f.as_str() == Some("fault-injection")),
        "the hook is not a default feature"
    );
    for release in ["scripts/run", "deploy"] {
        let path = root.join(release);
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            walk(&path)
        } else {
            vec![path]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                !text.contains("fault-injection"),
                "{} builds a release with the fault hook",
                file.display()
            );
        }
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let probe = dir.path().join("probe.rs");
    std::fs::write(
        &probe,
        format!(
            "#![allow(dead_code)]\n#[path = {:?}]\nmod fault;\nfn main() {{ fault::checkpoint(\"probe\"); println!(\"survived\"); }}\n",
            root.join("host/src/migrate/fault.rs")
        ),
    )
    .expect("write probe");
    let run = |features: &[&str]| {
        let exe = dir.path().join(format!("probe{}", features.len()));
        let mut rustc =
            std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()));
        rustc
            .current_dir(&root)
            .args(["--edition", "2021", "-o"])
            .arg(&exe)
            .arg(&probe);
        for f in features {
            rustc.args(["--cfg", &format!("feature=\"{f}\"")]);
        }
        let built = rustc.output().expect("run rustc");
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        std::process::Command::new(&exe)
            .env("KEYWARD_FAULT_KILL_AT", "1")
            .output()
            .expect("run probe")
    };
    let release = run(&[]);
    assert!(
        release.status.success() && String::from_utf8_lossy(&release.stdout).contains("survived"),
        "a build without the feature obeyed KEYWARD_FAULT_KILL_AT: {:?} {}",
        release.status,
        String::from_utf8_lossy(&release.stderr)
    );
    let test = run(&["fault-injection"]);
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        test.status.signal(),
        Some(9),
        "with the feature the hook kills"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
