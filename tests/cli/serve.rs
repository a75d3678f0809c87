//! `keyward serve`: starts on 127.0.0.1, answers /healthz and the API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use crate::Kw;

fn get(addr: &str, path: &str) -> String {
    request(addr, "GET", path, None)
}

fn request(addr: &str, method: &str, path: &str, token: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
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
    let mut child = kw
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let health = get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("{\"status\":\"ok\"}"), "{health}");
    assert!(get(&addr, "/nope").starts_with("HTTP/1.1 404"));
    // The served API has the plugin runtime behind it.
    assert!(request(&addr, "POST", "/plugins/reload", None).starts_with("HTTP/1.1 401"));
    let reload = request(&addr, "POST", "/plugins/reload", Some(&token));
    assert!(reload.starts_with("HTTP/1.1 200"), "{reload}");
    assert!(
        reload.contains(r#""loaded":["forgejo","github","gitlab"]"#)
            && reload.contains(r#""refused":[]"#),
        "{reload}"
    );
    let metrics = request(&addr, "GET", "/metrics", Some(&token));
    assert!(
        metrics.contains("keyward_plugin_calls_total 0")
            && metrics
                .contains(r#"keyward_http_requests_total{route="/plugins/reload",status="200"} 1"#),
        "{metrics}"
    );

    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}
