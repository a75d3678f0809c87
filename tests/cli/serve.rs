//! `keyward serve`: starts on 127.0.0.1, answers /healthz and the API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use crate::support::kw::{http, Served};
use crate::Kw;

pub(crate) fn get(addr: &str, path: &str) -> String {
    http(addr, "GET", path, None)
}

#[test]
fn serve_answers_healthz_and_stops_on_sigterm() {
    let kw = Kw::new();
    let token = kw
        .ok(
            &["token", "create", "--name", "ops", "--role", "operator"],
            b"",
        )
        .trim()
        .to_owned();
    let mut served = Served::spawn(
        kw.cmd(&["serve", "--listen", "127.0.0.1:0"]),
        &kw.dir.path().join("serve.log"),
    );
    let addr = served.addr.clone();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let health = get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("{\"status\":\"ok\"}"), "{health}");
    assert!(get(&addr, "/nope").starts_with("HTTP/1.1 404"));
    // The served API has the plugin runtime behind it.
    assert!(http(&addr, "POST", "/plugins/reload", None).starts_with("HTTP/1.1 401"));
    let reload = http(&addr, "POST", "/plugins/reload", Some(&token));
    assert!(reload.starts_with("HTTP/1.1 200"), "{reload}");
    assert!(
        reload.contains(
            r#""loaded":["account-credentials","agents-json","forgejo","github","gitlab","key-prefix","openbao-kv","token-dir"]"#
        )
            && reload.contains(r#""refused":[]"#),
        "{reload}"
    );
    let metrics = http(&addr, "GET", "/metrics", Some(&token));
    assert!(
        metrics.contains("keyward_plugin_calls_total 0")
            && metrics
                .contains(r#"keyward_http_requests_total{route="/plugins/reload",status="200"} 1"#),
        "{metrics}"
    );
    // `plugin reload` finds this live server by its locked pid file.
    let reload = kw.ok(&["plugin", "reload"], b"");
    assert!(
        reload.contains(&format!("asked keyward serve (pid {})", served.child.id())),
        "{reload}"
    );

    let pid = served.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = served.child.wait().expect("wait");
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    // A stopped server leaves no pid file behind.
    assert!(!kw.dir.path().join("keyward.pid").exists());
}

fn post_form(addr: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// `--dev` prints a one-time dashboard sign-in link that works once; the
/// address line stays the first line of stdout.
#[test]
fn serve_dev_prints_a_one_time_sign_in_link() {
    let kw = Kw::new();
    let mut child = kw
        .cmd(&["--dev", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut link = None;
    let mut first = String::new();
    out.read_line(&mut first).expect("read");
    assert!(first.starts_with("keyward listening on http://"), "{first}");
    for _ in 0..6 {
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        if let Some(at) = line.find("http://") {
            link = Some(line[at..].trim().to_owned());
            break;
        }
    }
    let link = link.expect("a sign-in link on stdout");
    let rest = link.strip_prefix("http://").expect("http");
    let (addr, path) = rest.split_at(rest.find('/').expect("path"));
    let secret = path.strip_prefix("/login/").expect("a /login/ link");
    assert_eq!(secret.len(), 43, "{secret}");
    assert!(get(addr, path).starts_with("HTTP/1.1 200"));
    let signed = post_form(addr, "/login", &format!("link={secret}"));
    assert!(signed.starts_with("HTTP/1.1 303"), "{signed}");
    assert!(
        signed.contains("keyward_session=") && signed.contains("HttpOnly"),
        "{signed}"
    );
    let again = post_form(addr, "/login", &format!("link={secret}"));
    assert!(
        again.starts_with("HTTP/1.1 401"),
        "the link works once: {again}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_refuses_a_public_url_that_is_not_an_origin() {
    let kw = Kw::new();
    for bad in [
        "ftp://x",
        "not a url",
        "https://k.example/path",
        "https://k.example/?q=1",
    ] {
        let out = kw.run(
            &["serve", "--listen", "127.0.0.1:0", "--public-url", bad],
            b"",
        );
        assert_eq!(crate::code(&out), 2, "{bad}: {}", crate::text(&out.stderr));
        assert!(crate::text(&out.stderr).contains("--public-url"), "{bad}");
    }
}
