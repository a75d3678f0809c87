//! `keyward serve`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{open_vault, Cli};
use crate::config;
use crate::runtime::Runtime;

/// The file in the data folder that holds the serving process's id, for
/// `keyward plugin reload`.
pub const PID_FILE: &str = "keyward.pid";

/// Arguments of `keyward serve`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// The URL operators' browsers reach this server at (behind a proxy,
    /// the proxy's). With https the session cookie is `Secure` and named
    /// `__Host-keyward_session`; sign-in links printed by --dev use it.
    #[arg(long, env = "KEYWARD_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<url::Url>,

    /// TOML file of the forges operators sign in with: one `[forge.NAME]`
    /// table per forge plugin (client_id, client_secret reference,
    /// base_url, redirect_uri, operators: logins pinned to their account id
    /// at first sign-in, or id:<account id>; scopes); see docs/forges.md.
    /// Read at start; a malformed file stops the server.
    #[arg(long, env = "KEYWARD_FORGES_FILE", value_name = "FILE")]
    forges: Option<std::path::PathBuf>,

    /// TOML file of boot migrations: `[[migration]]` tables (plugin,
    /// source, options), each run before the server listens and a no-op
    /// once finished; see docs/migrations.md. A malformed file stops the
    /// server; a failing migration is logged and the server starts.
    #[arg(long, env = crate::migrate::boot::BOOT_MIGRATIONS_VAR, value_name = "FILE")]
    migrations: Option<std::path::PathBuf>,
}

fn parse_public_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("use http://HOST[:PORT] or https://HOST[:PORT]".into());
    }
    if url.path() != "/" || url.query().is_some() {
        return Err("give the origin only, with no path or query".into());
    }
    Ok(url)
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let boot = match &args.migrations {
        Some(path) => crate::migrate::boot::load(path)?,
        None => Vec::new(),
    };
    let vault = open_vault(cli).await?;
    let options = super::plugin::options(cli);
    let started = std::time::Instant::now();
    let plugins = tokio::task::spawn_blocking(move || Runtime::start(options)).await??;
    let registry = plugins.registry();
    tracing::info!(
        loaded = ?registry.plugins.keys().collect::<Vec<_>>(),
        refused = registry.refused.len(),
        ms = started.elapsed().as_millis() as u64,
        "plugin runtime ready"
    );
    let opened = crate::runtime::addresses::operator().allowed();
    if !opened.is_empty() {
        tracing::info!(
            blocks = %opened.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "plugins may reach these special-purpose address blocks (KEYWARD_EGRESS_ALLOW)"
        );
    }
    crate::migrate::boot::run_all(&vault, &plugins, &boot).await;
    let _watch = plugins.watch();
    let _hup = reload_on_sighup(plugins.clone());
    let pid_file = config::data_dir(cli.data_dir.as_deref()).join(PID_FILE);
    write_pid_file(&pid_file);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "keyward listening on http://{addr} (store: {})",
        vault.db().display_url()
    );
    tracing::info!(%addr, "listening");
    let public = args.public_url.as_ref().map_or_else(
        || format!("http://{addr}"),
        |u| u.as_str().trim_end_matches('/').to_owned(),
    );
    let apps = match &args.forges {
        Some(path) => crate::forge::ForgeApps::load(path, &public)?,
        None => crate::forge::ForgeApps::default(),
    };
    tracing::info!(forges = ?apps.iter().map(|a| a.forge.as_str()).collect::<Vec<_>>(), "forge sign-in configured");
    let forges = crate::forge::Forges::new(vault.clone(), Some(plugins.clone()), apps);
    if cli.dev {
        print_login_link(&vault, &public).await?;
    }
    let web = crate::http::dashboard::CookiePolicy {
        secure: args
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https"),
    };
    axum::serve(
        listener,
        crate::http::router_with(vault, Some(plugins.clone()), Some(forges), web),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    let _ = std::fs::remove_file(&pid_file);
    Ok(ExitCode::SUCCESS)
}

/// `--dev`: a one-time operator sign-in link for the dashboard (until the
/// forge sign-in exists, the way into it).
async fn print_login_link(vault: &crate::vault::Vault, public: &str) -> anyhow::Result<()> {
    let sessions = crate::auth::Sessions::new(vault.db().clone());
    let link = sessions
        .link("dev")
        .await
        .context("cannot create a sign-in link")?;
    println!(
        "\n  Dashboard sign-in (one-time, valid 15 minutes, --dev only):\n  {public}/login/{}\n",
        link.expose()
    );
    Ok(())
}

fn write_pid_file(path: &std::path::Path) {
    use std::io::Write as _;
    let written = crate::store::create_private_file(path)
        .and_then(|mut f| writeln!(f, "{}", std::process::id()));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the pid file; `keyward plugin reload` will not find this server");
    }
}

/// SIGHUP reloads the plugins (what `keyward plugin reload` sends).
fn reload_on_sighup(plugins: Runtime) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let mut hup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()?;
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading plugins");
                plugins.reload().await;
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = plugins;
        None
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
