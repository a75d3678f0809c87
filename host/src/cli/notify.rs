//! systemd's readiness protocol (`sd_notify`, `Type=notify`): one datagram
//! to the socket named by `NOTIFY_SOCKET`, when there is one. A few lines
//! of the standard library, rather than a dependency.

/// The variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET_VAR: &str = "NOTIFY_SOCKET";

/// Sends `state` (`READY=1`, `STOPPING=1`, `STATUS=…`, newline-separated)
/// to systemd. Without `NOTIFY_SOCKET` (not under systemd) it does nothing;
/// a failure is logged, never fatal: the service works without it.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os(NOTIFY_SOCKET_VAR).filter(|p| !p.is_empty()) else {
        return;
    };
    if let Err(error) = send(&path, state) {
        tracing::warn!(
            %error,
            socket = %path.to_string_lossy(),
            "cannot notify systemd (NOTIFY_SOCKET)"
        );
    }
}

#[cfg(unix)]
fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    match bytes.strip_prefix(b"@") {
        // A name in the abstract namespace (Linux).
        Some(name) => {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)?;
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = name;
                return Err(std::io::Error::other("abstract sockets are Linux only"));
            }
        }
        None => {
            socket.send_to(state.as_bytes(), path)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn send(_path: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Ok(())
}
