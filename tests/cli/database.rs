//! A database that cannot be reached: the cause is said within seconds and
//! no password is ever printed, whatever characters it holds or wherever in
//! the URL it is given.

use std::time::{Duration, Instant};

use crate::{code, text, Kw};

/// Well under the pool's 30 s acquire timeout, which is what a refused
/// connection used to wait for before saying only "pool timed out".
const PROMPT: Duration = Duration::from_secs(10);

/// Runs `secret list` against `url`: exit code, stderr, and how long it took.
fn list_against(url: &str) -> (i32, String, Duration) {
    let kw = Kw {
        database_url: Some(url.to_owned()),
        ..Kw::new()
    };
    let started = Instant::now();
    let out = kw.run(&["secret", "list"], b"");
    (code(&out), text(&out.stderr), started.elapsed())
}

/// A port nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_refused_connection_is_said_promptly_and_hides_the_password() {
    let port = closed_port();
    // (URL, its password, what the message must say). An unescaped `/`
    // ends the host part, so that URL cannot be read at all: the message
    // says how to write it.
    for (url, password, cause) in [
        (
            format!("postgres://kw:pa/ss@127.0.0.1:{port}/db"),
            "pa/ss",
            "percent-encode",
        ),
        (
            format!("postgres://kw:p%40ss%3Fw%23rd@127.0.0.1:{port}/db"),
            "p%40ss",
            "refused",
        ),
        (
            format!("postgres://kw@127.0.0.1:{port}/db?password=hunter2&sslmode=disable"),
            "hunter2",
            "refused",
        ),
        (
            format!("postgresql://kw:se@cret@127.0.0.1:{port}/db"),
            "se@cret",
            "refused",
        ),
    ] {
        let (exit, stderr, took) = list_against(&url);
        assert_ne!(exit, 0, "{stderr}");
        assert!(took < PROMPT, "took {took:?}: {stderr}");
        assert!(stderr.to_lowercase().contains(cause), "{url}: {stderr}");
        assert!(
            !stderr.contains(password),
            "{url} printed its password: {stderr}"
        );
        assert!(!stderr.contains("pool timed out"), "{stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    }
}

#[test]
fn a_missing_database_is_named_promptly() {
    let admin = std::env::var("KEYWARD_TEST_POSTGRES_URL")
        .expect("KEYWARD_TEST_POSTGRES_URL: run the tests with scripts/test");
    let base = admin.rsplit_once('/').expect("URL with a database").0;
    let (exit, stderr, took) = list_against(&format!("{base}/kw_no_such_database"));
    assert_ne!(exit, 0, "{stderr}");
    assert!(took < PROMPT, "took {took:?}: {stderr}");
    assert!(
        stderr.contains("kw_no_such_database") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

/// A password the server rejects is said as such. The suite's server
/// trusts every local connection, so this test gives one role of its own a
/// password rule (a line at the top of `pg_hba.conf`, for that role only)
/// and reloads the server's configuration.
#[test]
fn a_rejected_password_is_named_promptly_and_not_printed() {
    let admin = std::env::var("KEYWARD_TEST_POSTGRES_URL")
        .expect("KEYWARD_TEST_POSTGRES_URL: run the tests with scripts/test");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        use sqlx::{Connection as _, Row as _};
        let mut conn = sqlx::postgres::PgConnection::connect(&admin)
            .await
            .expect("admin connection");
        let exists = sqlx::query("SELECT 1 FROM pg_roles WHERE rolname = 'kw_pwtest'")
            .fetch_optional(&mut conn)
            .await
            .expect("query")
            .is_some();
        if !exists {
            // Two test processes may race here; the loser's error is harmless.
            let _ = sqlx::query("CREATE ROLE kw_pwtest LOGIN PASSWORD 'right-password'")
                .execute(&mut conn)
                .await;
        }
        let hba: String = sqlx::query("SHOW hba_file")
            .fetch_one(&mut conn)
            .await
            .expect("hba_file")
            .get(0);
        let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        let rule = "host all kw_pwtest 127.0.0.1/32 scram-sha-256\n";
        if !rules.contains(rule) {
            std::fs::write(&hba, format!("{rule}{rules}")).expect("write pg_hba.conf");
        }
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await
            .expect("reload");
    });
    let host = admin
        .split_once('@')
        .expect("URL with a user")
        .1
        .rsplit_once('/')
        .expect("URL with a database")
        .0;
    let url = format!("postgres://kw_pwtest:wrong-h%40ss@{host}/postgres");
    let (exit, stderr, took) = list_against(&url);
    assert_ne!(exit, 0, "{stderr}");
    assert!(took < PROMPT, "took {took:?}: {stderr}");
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-h"), "{stderr}");
}
