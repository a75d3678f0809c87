//! A PostgreSQL server of one test's own, to stop and start under load (the
//! suite's shared server must stay up for the others). It uses the binaries
//! scripts/postgres found (`KEYWARD_TEST_PG_BIN`); without them the test
//! fails, saying so — it never skips silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throw-away server in a temporary folder, stopped when dropped.
pub struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The data directory: `data` in `dir`, or on a disk of the test's.
    data: PathBuf,
    port: u16,
    /// `postgres://keyward@127.0.0.1:PORT/postgres`.
    pub url: String,
}

fn run_as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Output {
    let mut cmd = if rustix::process::getuid().is_root() {
        // PostgreSQL refuses to run as root (scripts/postgres made the user).
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

impl OwnPostgres {
    /// initdb and start a server on a free port of 127.0.0.1.
    pub fn start() -> OwnPostgres {
        Self::start_with_data_in(None)
    }

    /// [`OwnPostgres::start`] with the data directory in `disk` (a small
    /// disk the test fills) and the WAL kept in the server's own temporary
    /// folder: a full data disk makes PostgreSQL refuse the writes that need
    /// a new page ("could not extend file"), not crash. (A full WAL disk
    /// makes it PANIC and restart, which is the crash-stop test's case.)
    pub fn start_on(disk: &Path) -> OwnPostgres {
        Self::start_with_data_in(Some(disk))
    }

    fn start_with_data_in(disk: Option<&Path>) -> OwnPostgres {
        let bin = std::env::var("KEYWARD_TEST_PG_BIN")
            .map(PathBuf::from)
            .expect(
                "KEYWARD_TEST_PG_BIN is not set: run the suite through scripts/test \
             (or `source scripts/postgres`), which installs and finds PostgreSQL",
            );
        let dir = tempfile::Builder::new()
            .prefix("keyward-own-pg.")
            .tempdir()
            .expect("temp dir");
        if rustix::process::getuid().is_root() {
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(chown.success(), "chown postgres {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data = match disk {
            Some(disk) => {
                let data = disk.join("pgdata");
                std::fs::create_dir(&data).expect("data directory");
                if rustix::process::getuid().is_root() {
                    let chown = Command::new("chown")
                        .arg("postgres")
                        .arg(&data)
                        .status()
                        .expect("chown");
                    assert!(chown.success(), "chown postgres {}", data.display());
                }
                data
            }
            None => dir.path().join("data"),
        };
        let wal = dir.path().join("wal");
        let out = run_as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().expect("path"),
                "-X",
                wal.to_str().expect("path"),
                "-U",
                "keyward",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = OwnPostgres {
            bin,
            url: format!("postgres://keyward@127.0.0.1:{port}/postgres"),
            dir,
            data,
            port,
        };
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.data.display().to_string()
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn up(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let out = run_as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server: `fast` (clients disconnected, clean shutdown) or
    /// `immediate` (a crash stop: recovery at the next start).
    pub fn down(&self, mode: &str) {
        let out = run_as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = run_as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}
