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

    /// Keep a signed checkpoint of the access log's head in FILE (replaced
    /// atomically at start and every --audit-checkpoint-every seconds), to
    /// ship off the host for `keyward audit verify --checkpoint`; see
    /// docs/access-log.md. A failed write is logged; serving goes on.
    #[arg(long, env = "KEYWARD_AUDIT_CHECKPOINT", value_name = "FILE")]
    audit_checkpoint: Option<std::path::PathBuf>,

    /// Seconds between two checkpoints written to --audit-checkpoint
    /// (1 to 86400).
    #[arg(
        long,
        env = "KEYWARD_AUDIT_CHECKPOINT_EVERY",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    audit_checkpoint_every: u64,

    /// Seconds between two background walks of the access log's chain (the
    /// rows appended since the last walk; 0 turns it off). The verified
    /// head is in /metrics (`keyward_access_log_verified_seq`, and
    /// `keyward_access_log_broken_at` if a row fails) and on the dashboard.
    /// With --audit-checkpoint, the first walk starts after the checkpoint
    /// in that file; otherwise from the first row.
    #[arg(
        long,
        env = "KEYWARD_AUDIT_VERIFY_EVERY",
        value_name = "SECONDS",
        default_value_t = crate::audit::background_verify::DEFAULT_EVERY_SECONDS,
        value_parser = clap::value_parser!(u64).range(0..=86_400)
    )]
    audit_verify_every: u64,

    /// Keep the access log's rows this long in the database (`90d`, `12h`):
    /// older ones are moved to archive files in --audit-archive-dir and
    /// deleted, checked every hour (or every quarter of the age, if less).
    /// Each run is an `archive` row in the log. On PostgreSQL one host
    /// archives at a time. Unset: nothing is archived. See
    /// docs/access-log.md.
    #[arg(
        long,
        env = "KEYWARD_AUDIT_RETAIN",
        value_name = "AGE",
        value_parser = crate::text::parse_duration,
        requires = "audit_archive_dir"
    )]
    audit_retain: Option<std::time::Duration>,

    /// Where --audit-retain writes its archive files
    /// (`access-log-FIRST-LAST.jsonl.gz`, 0600); created if missing. Keep
    /// them (and ship them off the host): `keyward audit verify --archive`
    /// needs them to verify the rows they hold.
    #[arg(
        long,
        env = "KEYWARD_AUDIT_ARCHIVE_DIR",
        value_name = "DIR",
        requires = "audit_retain"
    )]
    audit_archive_dir: Option<std::path::PathBuf>,
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
    // Read before the checkpoint writer replaces the file.
    let _verify = (args.audit_verify_every > 0).then(|| {
        let start = args
            .audit_checkpoint
            .as_deref()
            .and_then(|path| start_checkpoint(&vault, path));
        crate::audit::background_verify::spawn(
            vault.clone(),
            start,
            std::time::Duration::from_secs(args.audit_verify_every),
        )
    });
    let _checkpoints = args.audit_checkpoint.clone().map(|path| {
        let every = std::time::Duration::from_secs(args.audit_checkpoint_every);
        super::checkpoint_file::spawn_periodic(vault.clone(), path, every)
    });
    let _purge = spawn_purge(vault.clone());
    let _retention = match (args.audit_retain, &args.audit_archive_dir) {
        (Some(age), Some(dir)) => Some(super::audit_retention::spawn(vault.clone(), age, dir)?),
        _ => None,
    };
    // History reads the index up to its mark and the log after it: the
    // follower keeps that tail short (see audit::log_index).
    let _index = crate::audit::log_index::spawn_follower(vault.clone());
    let _watch = plugins.watch();
    let _hup = reload_on_sighup(plugins.clone());
    let _pid_file = PidFile::claim(config::data_dir(cli.data_dir.as_deref()).join(PID_FILE));
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
    // Everything is up and the socket is bound: systemd (Type=notify) may
    // start what depends on this service.
    super::notify::notify(&format!("READY=1\nSTATUS=listening on {addr}"));
    axum::serve(
        listener,
        crate::http::router_with(vault, Some(plugins.clone()), Some(forges), web)
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
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

/// The pid file, holding this server's pid under an exclusive `flock` for
/// as long as the server runs. `keyward plugin reload` signals the pid only
/// while that lock is held: a file left behind by a killed server (the lock
/// goes with the process) names a pid the system may have given to anything
/// since, and is reported as stale instead of obeyed.
struct PidFile {
    path: std::path::PathBuf,
    _locked: std::fs::File,
}

impl PidFile {
    /// Takes the pid file of the data folder; none (with a warning) when
    /// another live server holds it or it cannot be written.
    fn claim(path: std::path::PathBuf) -> Option<PidFile> {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        // Not truncated before the lock is ours: the file may be a live
        // server's.
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = options.open(&path).and_then(|mut file| {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(std::io::Error::other(
                        "another keyward serve of this data folder holds it",
                    ))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()?;
            Ok(file)
        });
        match written {
            Ok(file) => Some(PidFile {
                path,
                _locked: file,
            }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot take the pid file; `keyward plugin reload` will not find this server");
                None
            }
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed while still locked, so a reload never finds this file
        // unlocked with this pid in it.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The checkpoint in `path` for the background verify to start after, if
/// the file is there and genuine (a refused one is logged and ignored: the
/// verify then walks the whole chain).
fn start_checkpoint(
    vault: &crate::vault::Vault,
    path: &std::path::Path,
) -> Option<crate::audit::checkpoint::Checkpoint> {
    let text = std::fs::read_to_string(path).ok()?;
    match crate::audit::checkpoint::SignedCheckpoint::parse(&text)
        .and_then(|signed| vault.check_checkpoint(&signed))
    {
        Ok(checkpoint) => Some(checkpoint),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "the audit checkpoint file is refused; the background verify walks the whole chain");
            None
        }
    }
}

/// Destroys deleted secrets past the retention window, at start and then
/// every quarter of the window (at least every second, at most every
/// minute), so a secret is gone at most a minute after its window closes.
/// On PostgreSQL the hosts take turns (an advisory lock); a failure (the
/// log cannot be written) is retried on the next tick.
fn spawn_purge(vault: crate::vault::Vault) -> tokio::task::JoinHandle<()> {
    let every = (vault.retention() / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match vault.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    destroyed = n,
                    "purged secrets deleted past the retention window"
                ),
                Err(error) => tracing::warn!(%error, "purge of deleted secrets failed; retrying"),
            }
        }
    })
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
    super::notify::notify("STOPPING=1");
    tracing::info!("shutting down");
}
