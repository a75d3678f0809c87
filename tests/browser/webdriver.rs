//! Just enough of the W3C WebDriver protocol to drive ChromeDriver: JSON
//! over HTTP on 127.0.0.1, so the test needs no client library.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The key the protocol uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The Tab key, as WebDriver spells it.
pub const TAB: &str = "\u{E004}";

/// A running ChromeDriver, killed on drop.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // ChromeDriver runs in a process group of its own, with Chromium
        // under it: killing the group leaves no browser behind, even when
        // a failed assertion skipped `Browser::quit`.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn required(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: the browser test needs Debian's chromium and chromium-driver. \
         scripts/test installs them (`source scripts/chromium`), or set {var}."
    );
    path
}

impl Driver {
    /// Starts ChromeDriver and waits until it is ready.
    pub async fn start() -> Driver {
        let bin = required("KEYWARD_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let child = Command::new(bin)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
            {
                let v: Value = serde_json::from_str(&r.text().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
                if v["value"]["ready"] == json!(true) {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens a headless Chromium.
    pub async fn browser(&self) -> Browser {
        let chromium = required("KEYWARD_CHROMIUM", "/usr/bin/chromium");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1100",
                         "--no-first-run", "--disable-extensions"]
            }
        }}});
        let r = send_json(self.http.post(format!("{}/session", self.base)), Some(caps)).await;
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium did not start: {r}"))
            .to_owned();
        Browser {
            url: format!("{}/session/{id}", self.base),
            http: self.http.clone(),
        }
    }
}

/// Sends `body` as JSON and reads a JSON answer (reqwest here is built
/// without its `json` feature).
async fn send_json(mut req: reqwest::RequestBuilder, body: Option<Value>) -> Value {
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let text = req
        .send()
        .await
        .expect("webdriver answers")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("webdriver sent no JSON: {text}"))
}

/// One browser session.
pub struct Browser {
    url: String,
    http: reqwest::Client,
}

/// An element on the current page.
pub struct Element(String);

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        let r = send_json(req, body).await;
        if let Some(err) = r["value"]["error"].as_str() {
            panic!(
                "webdriver {method} {path}: {err}: {}",
                r["value"]["message"]
            );
        }
        r["value"].clone()
    }

    /// Navigates to `url` and waits for the page.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .expect("url")
            .to_owned()
    }

    /// The page's HTML as the browser has it.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .expect("source")
            .to_owned()
    }

    /// Waits (up to 15 s) until the page holds `text` and returns the page:
    /// a click that submits a form may return before the next page loads.
    pub async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {text:?}; it is {}: {source}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first element matching the CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        Element(v[ELEMENT].as_str().expect("element id").to_owned())
    }

    /// Every element matching the CSS selector.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .expect("elements")
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().expect("id").to_owned()))
            .collect()
    }

    /// The element that has the keyboard focus.
    pub async fn active(&self) -> Element {
        let v = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await;
        Element(v[ELEMENT].as_str().expect("element id").to_owned())
    }

    /// Clicks `el` (and waits for any navigation it starts).
    pub async fn click(&self, el: &Element) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.0),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into `el` (keys such as [`TAB`] included).
    pub async fn type_into(&self, el: &Element, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// The visible text of `el`.
    pub async fn text(&self, el: &Element) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/text", el.0),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// A DOM property of `el` (`value`, `id`, …).
    pub async fn property(&self, el: &Element, name: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/property/{name}", el.0),
                None,
            )
            .await;
        // A boolean (`checked`) or a number comes back as its JSON text.
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("png")
    }

    /// Closes the browser.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}
