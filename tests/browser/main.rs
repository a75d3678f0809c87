//! The dashboard in a real headless Chromium (Debian's, driven through
//! ChromeDriver): sign in with a one-time link, add a secret and see it
//! masked, rotate it, read its access log, create and revoke an API token,
//! delete the secret — using the keyboard where a person would; and set up
//! an agent type against an emulated Forgejo, test-dispatch with its token
//! and make a token bound to it; roll a secret back to an earlier version
//! with a reason. Every page is searched for the stored
//! values, and screenshots are saved under target/test-artifacts/.

#[path = "../support/mod.rs"]
mod support;
mod webdriver;

use std::path::PathBuf;

use keyward::auth::Sessions;
use support::{TestDb, TestKey};
use webdriver::{Browser, Driver, TAB};

const FIRST: &str = "browser-value-7c1d-FIRST";

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// Waits for the page that shows `expect`, saves a screenshot and checks
/// the page holds no stored value.
async fn checkpoint(browser: &Browser, name: &str, expect: &str, values: &[&str]) -> String {
    let source = browser.wait_for(expect).await;
    for v in values {
        assert!(!source.contains(v), "{name}: the page holds a stored value");
    }
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(artifacts().join(format!("dashboard-{name}.png")), png)
        .expect("save screenshot");
    source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_secrets_and_tokens_in_chromium() {
    let db = TestDb::sqlite().await;
    let vault = db.open(&TestKey::new()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = keyward::http::router(vault.clone(), None);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let link = Sessions::new(vault.db().clone())
        .link("dev")
        .await
        .expect("link");

    let driver = Driver::start().await;
    let b = driver.browser().await;
    let values = [FIRST];

    // Without a session the dashboard sends the browser to sign in.
    b.goto(&format!("{base}/settings/secrets")).await;
    assert_eq!(b.url().await, format!("{base}/login"));

    // Sign in: the link's page has one button, focused; Enter presses it.
    b.goto(&format!("{base}/login/{}", link.expose())).await;
    let button = b.active().await;
    assert_eq!(
        b.text(&button).await,
        "Sign in",
        "the sign-in button has the focus"
    );
    b.type_into(&button, "\u{E007}").await; // Enter
    checkpoint(&b, "1-signed-in", "Signed in as dev", &values).await;
    assert_eq!(b.url().await, format!("{base}/settings/secrets"));

    // Add a secret with the keyboard: type, Tab to the next field.
    let name = b.find("#name").await;
    b.type_into(&name, "BROWSER_KEY").await;
    b.type_into(&name, TAB).await;
    let scope = b.active().await;
    assert_eq!(
        b.property(&scope, "id").await,
        "scope",
        "Tab moves from name to scope"
    );
    b.type_into(&scope, TAB).await;
    let value = b.active().await;
    assert_eq!(
        b.property(&value, "type").await,
        "password",
        "the value input hides what is typed"
    );
    b.type_into(&value, FIRST).await;
    b.type_into(&value, TAB).await;
    let description = b.active().await;
    b.type_into(&description, "made in Chromium").await;
    b.type_into(&description, "\u{E007}").await; // Enter submits the form
    let page = checkpoint(&b, "2-added", "Secret added.", &values).await;
    assert!(
        b.url()
            .await
            .starts_with(&format!("{base}/settings/secrets/BROWSER_KEY?scope=global")),
        "{}",
        b.url().await
    );
    assert!(page.contains("••••"), "the value shows masked");
    // The value input on this page is empty: write-only.
    assert_eq!(b.property(&b.find("#value").await, "value").await, "");

    // Rotate.
    let rotate = b.find("form[action*='/rotate'] button").await;
    b.click(&rotate).await;
    checkpoint(
        &b,
        "3-rotated",
        "Re-sealed under the current master key.",
        &values,
    )
    .await;

    // The access log lists the dashboard's own changes, by the session.
    let rows = b.find_all("section[aria-labelledby='log'] tbody tr").await;
    assert!(rows.len() >= 2, "create and rotate are in the log");
    let mut log = String::new();
    for r in &rows {
        log.push_str(&b.text(r).await);
        log.push('\n');
    }
    assert!(log.contains("session:dev"), "{log}");
    assert!(log.contains("reseal") || log.contains("rotate"), "{log}");

    // The list shows it masked.
    b.goto(&format!("{base}/settings/secrets")).await;
    let row = b.find("tbody tr").await;
    let text = b.text(&row).await;
    assert!(
        text.contains("BROWSER_KEY") && text.contains("••••"),
        "{text}"
    );
    checkpoint(&b, "4-list", "BROWSER_KEY", &values).await;

    // A token: shown once, works over the API, revoked in the page.
    b.click(&b.find("nav a[href='/settings/tokens']").await)
        .await;
    b.wait_for("Create a token").await;
    b.type_into(&b.find("#token-name").await, "browser bot")
        .await;
    // Narrow by default: only render is ticked. This one lists secrets.
    let metadata = b.find("input[name='can'][value='metadata']").await;
    assert_eq!(b.property(&metadata, "checked").await, "false");
    b.click(&metadata).await;
    b.type_into(&b.find("#token-resolve").await, "*/*").await;
    b.click(
        &b.find("form[action='/settings/tokens'] button[type='submit']")
            .await,
    )
    .await;
    checkpoint(&b, "5-token-shown-once", "shown this once", &values).await;
    let token = b.property(&b.find("#new-token-value").await, "value").await;
    assert!(token.starts_with("kw_"), "{token}");
    let http = reqwest::Client::new();
    let status = |t: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}/secrets"))
                .bearer_auth(t)
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(token.clone()).await, 200, "the new token works");
    b.goto(&format!("{base}/settings/tokens")).await;
    let listed = b.wait_for("Revoke token browser bot").await;
    assert!(!listed.contains(&token), "the token is shown once only");
    b.click(
        &b.find("button[aria-label='Revoke token browser bot']")
            .await,
    )
    .await;
    checkpoint(&b, "6-token-revoked", "Token revoked.", &values).await;
    assert_eq!(
        status(token.clone()).await,
        401,
        "the revoked token is refused"
    );

    // Delete, through the confirmation page.
    b.goto(&format!("{base}/settings/secrets/BROWSER_KEY?scope=global"))
        .await;
    b.click(&b.find("a.danger").await).await;
    checkpoint(&b, "7-confirm-delete", "can be undeleted", &values).await;
    let confirm = b.active().await;
    assert_eq!(
        b.text(&confirm).await,
        "Delete",
        "the confirmation has the focus"
    );
    b.click(&confirm).await;
    let page = checkpoint(&b, "8-deleted", "Secret deleted.", &values).await;
    assert!(page.contains("Deleted secrets"), "{page}");
    // Undeleted from the list of deleted secrets, then destroyed for good
    // through its own confirmation.
    b.click(&b.find("button[aria-label='Undelete BROWSER_KEY']").await)
        .await;
    checkpoint(&b, "8a-undeleted", "Secret undeleted", &values).await;
    b.goto(&format!(
        "{base}/settings/secrets/BROWSER_KEY/delete?scope=global"
    ))
    .await;
    b.wait_for("can be undeleted").await;
    b.click(&b.active().await).await;
    b.wait_for("Secret deleted.").await;
    b.click(&b.find("a[aria-label='Destroy BROWSER_KEY now…']").await)
        .await;
    checkpoint(&b, "8b-confirm-destroy", "Destroy for good", &values).await;
    b.click(&b.active().await).await;
    let page = checkpoint(&b, "8c-destroyed", "Secret destroyed", &values).await;
    assert!(!page.contains("BROWSER_KEY"), "{page}");

    // The whole access log, filtered, and the chain verified on request.
    b.goto(&format!("{base}/settings/access-log?action=destroy"))
        .await;
    let page = checkpoint(&b, "8d-access-log", "BROWSER_KEY", &values).await;
    assert!(!page.contains("reveal"), "filtered to destroy rows: {page}");
    b.click(
        &b.find("form[action='/settings/access-log/verify'] button")
            .await,
    )
    .await;
    checkpoint(&b, "8e-verified", "chain intact", &values).await;

    // Sign out; the dashboard is closed again.
    b.click(&b.find("header form button").await).await;
    b.wait_for("prints a one-time link").await;
    assert_eq!(b.url().await, format!("{base}/login"));
    b.goto(&format!("{base}/settings/secrets")).await;
    b.wait_for("prints a one-time link").await;
    assert_eq!(b.url().await, format!("{base}/login"));
    b.quit().await;
    assert!(vault.list(None).await.expect("list").is_empty());
}

/// What the agent-type test types in as forge tokens: never on a page.
const FORGE_FIRST: &str = "agent-token-in-browser-1111";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_an_agent_type_and_a_bound_token_in_chromium() {
    use forge_emulator::{Emulator, Flavor};
    use keyward::runtime::{Options, Runtime};

    let emu = Emulator::start(Flavor::Forgejo).await;
    emu.add_user("bot", 1003);
    let forge_token = emu.personal_token("bot");
    let db = TestDb::sqlite().await;
    let vault = db.open(&TestKey::new()).await;
    // The built-in forge plugins, compiled once into the cache the forge
    // tests share.
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join("plugin-test-cache");
    let rt = Runtime::start(Options {
        cache_dir: Some(cache),
        builtins: true,
        ..Default::default()
    })
    .expect("runtime starts");
    let forges = keyward::forge::Forges::new(vault.clone(), Some(rt.clone()), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = keyward::http::router_with(vault.clone(), Some(rt), Some(forges), Default::default());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let link = Sessions::new(vault.db().clone())
        .link("dev")
        .await
        .expect("link");

    let driver = Driver::start().await;
    let b = driver.browser().await;
    let values = [forge_token.as_str(), FORGE_FIRST];
    b.goto(&format!("{base}/login/{}", link.expose())).await;
    b.click(&b.active().await).await;
    b.wait_for("Signed in as dev").await;

    // Add the type, its token typed into a password input.
    b.click(&b.find("nav a[href='/settings/agent-types']").await)
        .await;
    checkpoint(&b, "agent-1-list", "No agent types yet.", &values).await;
    b.type_into(&b.find("#type-name").await, "coder").await;
    b.type_into(&b.find("#type-forge").await, "forgejo").await;
    b.type_into(&b.find("#type-base").await, &emu.base_url())
        .await;
    let token = b.find("#type-token").await;
    assert_eq!(b.property(&token, "type").await, "password");
    assert_eq!(b.property(&token, "autocomplete").await, "off");
    b.type_into(&token, FORGE_FIRST).await;
    b.click(
        &b.find("form[action='/settings/agent-types'] button[type='submit']")
            .await,
    )
    .await;
    checkpoint(&b, "agent-2-added", "Agent type added.", &values).await;
    assert_eq!(
        b.url().await,
        format!("{base}/settings/agent-types/coder?notice=agent-created")
    );

    // A test dispatch with a token the forge does not know: its error.
    b.click(&b.find("form[action$='/dispatch'] button").await)
        .await;
    let page = checkpoint(
        &b,
        "agent-3-dispatch-refused",
        "The test dispatch failed",
        &values,
    )
    .await;
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(
        page.contains("failed (424)"),
        "the forge refused the token: {page}"
    );

    // Rotate to the forge's real token; the next dispatch uses it.
    let token = b.find("#type-token").await;
    assert_eq!(b.property(&token, "type").await, "password");
    b.type_into(&token, &forge_token).await;
    b.type_into(&token, "\u{E007}").await; // Enter
    checkpoint(&b, "agent-4-rotated", "Token saved", &values).await;
    b.click(&b.find("form[action$='/dispatch'] button").await)
        .await;
    // The answer's own words: the page's help text also says "the token
    // belongs to", so waiting for that matched the page before the click.
    let page = checkpoint(
        &b,
        "agent-5-dispatch",
        "The forge answered: the token belongs to",
        &values,
    )
    .await;
    assert!(page.contains("<strong>bot</strong>"), "{page}");

    // An instance override, then a token made from the agent's page.
    b.type_into(&b.find("#override-instance").await, "i-1")
        .await;
    b.type_into(&b.find("#override-token").await, FORGE_FIRST)
        .await;
    b.click(&b.find("#override-token ~ button").await).await;
    let page = checkpoint(&b, "agent-6-override", "Token saved", &values).await;
    assert!(page.contains("<code>i-1</code>"), "{page}");
    b.click(
        &b.find("a[href='/settings/tokens?agent_type=coder#new-token']")
            .await,
    )
    .await;
    b.wait_for("Create a token").await;
    let agent = b.find("#token-agent").await;
    assert_eq!(b.property(&agent, "value").await, "coder", "pre-bound");
    b.type_into(&b.find("#token-name").await, "coder bot").await;
    b.click(
        &b.find("form[action='/settings/tokens'] button[type='submit']")
            .await,
    )
    .await;
    checkpoint(&b, "agent-7-token-shown-once", "shown this once", &values).await;
    let bound = b.property(&b.find("#new-token-value").await, "value").await;
    assert!(bound.starts_with("kw_"), "{bound}");
    let page = b.wait_for("Bound to").await;
    assert!(page.contains("agent type <strong>coder</strong>"), "{page}");
    let http = reqwest::Client::new();
    // Render only: it may render, not list secrets.
    let render = http
        .post(format!("{base}/render"))
        .bearer_auth(&bound)
        .header("content-type", "application/json")
        .body(r#"{"template": "hello", "reason": "browser test"}"#)
        .send()
        .await
        .expect("render");
    assert_eq!(render.status().as_u16(), 200);
    let list = http
        .get(format!("{base}/secrets"))
        .bearer_auth(&bound)
        .send()
        .await
        .expect("list");
    assert_eq!(list.status().as_u16(), 403, "narrow: no metadata");
    b.goto(&format!("{base}/settings/tokens")).await;
    let page = checkpoint(&b, "agent-8-token-list", "Revoke token coder bot", &values).await;
    assert!(!page.contains(&bound), "shown once only");
    assert!(page.contains("agent type <strong>coder</strong>"), "{page}");
    // The plugins the runtime loaded, with their grants, and a reload.
    b.goto(&format!("{base}/settings/plugins")).await;
    let page = checkpoint(&b, "agent-9-plugins", "forgejo", &values).await;
    assert!(page.contains("May reach"), "{page}");
    b.click(
        &b.find("form[action='/settings/plugins/reload'] button")
            .await,
    )
    .await;
    checkpoint(&b, "agent-10-reloaded", "Plugins reloaded.", &values).await;
    b.quit().await;
}

/// A bad rotation undone from the dashboard: the secret's page lists its
/// versions (never a value), "Roll back to this…" asks why, and the new
/// version and its two log rows (a read and a write, with the reason) are
/// on the page that comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rolls_back_a_bad_rotation_in_chromium() {
    const GOOD: &str = "rollback-value-GOOD-5e1";
    const BAD: &str = "rollback-value-BAD-9a0";
    let db = TestDb::sqlite().await;
    let vault = db.open(&TestKey::new()).await;
    let access =
        keyward::audit::Access::new("operator:rotator", "scheduled rotation").expect("access");
    let (g, n) = (
        keyward::names::Scope::global(),
        keyward::names::SecretName::parse("DEPLOY_TOKEN").expect("name"),
    );
    vault
        .create(&g, &n, GOOD.as_bytes(), "deploys", &access)
        .await
        .expect("create");
    vault
        .replace(&g, &n, BAD.as_bytes(), &access)
        .await
        .expect("replace");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = keyward::http::router(vault.clone(), None);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let link = Sessions::new(vault.db().clone())
        .link("dev")
        .await
        .expect("link");
    let driver = Driver::start().await;
    let b = driver.browser().await;
    let values = [GOOD, BAD];

    b.goto(&format!("{base}/login/{}", link.expose())).await;
    let button = b.active().await;
    b.type_into(&button, "\u{E007}").await;
    checkpoint(&b, "rollback-1-signed-in", "Signed in as dev", &values).await;
    b.goto(&format!(
        "{base}/settings/secrets/DEPLOY_TOKEN?scope=global"
    ))
    .await;
    checkpoint(&b, "rollback-2-versions", "Versions", &values).await;
    let rows = b
        .find_all("section[aria-labelledby='versions'] tbody tr")
        .await;
    assert_eq!(rows.len(), 2, "two versions listed");
    let first = b.text(&rows[0]).await;
    assert!(
        first.starts_with("2") && first.contains("current"),
        "{first}"
    );
    assert!(b.text(&rows[1]).await.contains("operator:rotator"));

    // Roll back to version 1: the confirmation asks why.
    let link = b
        .find("section[aria-labelledby='versions'] a[href*='/rollback']")
        .await;
    b.click(&link).await;
    checkpoint(&b, "rollback-3-confirm", "It becomes version 3", &values).await;
    let reason = b.active().await;
    assert_eq!(
        b.property(&reason, "id").await,
        "reason",
        "the reason has the focus"
    );
    b.type_into(&reason, "the rotation broke deploys").await;
    b.type_into(&reason, "\u{E007}").await; // Enter submits
    checkpoint(
        &b,
        "rollback-4-done",
        "Rolled back: the earlier value is the new version.",
        &values,
    )
    .await;
    let rows = b
        .find_all("section[aria-labelledby='versions'] tbody tr")
        .await;
    assert_eq!(rows.len(), 3);
    let newest = b.text(&rows[0]).await;
    assert!(
        newest.starts_with("3") && newest.contains("current") && newest.contains("session:dev"),
        "{newest}"
    );
    let mut log = String::new();
    for r in b.find_all("section[aria-labelledby='log'] tbody tr").await {
        log.push_str(&b.text(&r).await);
        log.push('\n');
    }
    let by_reason: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the rotation broke deploys") && l.contains("session:dev"))
        .collect();
    assert_eq!(by_reason.len(), 2, "{log}");
    assert!(by_reason.iter().any(|l| l.contains("replace")), "{log}");
    assert!(by_reason.iter().any(|l| l.contains("reveal")), "{log}");
    // The value is the good one again.
    let ctx = keyward::resolve::Context::default();
    let reference = keyward::names::SecretRef::parse("DEPLOY_TOKEN").expect("ref");
    let (_, value) = vault
        .reveal(&reference, &ctx, &access, keyward::audit::Action::Reveal)
        .await
        .expect("reveal");
    assert_eq!(value.expose(), GOOD.as_bytes());
    b.quit().await;
}
