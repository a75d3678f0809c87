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
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
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
    axum::serve(listener, crate::http::router(vault, Some(plugins.clone())))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = std::fs::remove_file(&pid_file);
    Ok(ExitCode::SUCCESS)
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
