//! The real `keyward` binary with a data folder and key of its own.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

use super::TestKey;

/// A data folder and key for one test; runs the binary against them.
pub struct Kw {
    pub dir: tempfile::TempDir,
    pub key: TestKey,
    pub database_url: Option<String>,
}

impl Default for Kw {
    fn default() -> Kw {
        Kw::new()
    }
}

impl Kw {
    pub fn new() -> Kw {
        Kw {
            dir: tempfile::tempdir().expect("temp dir"),
            key: TestKey::new(),
            database_url: None,
        }
    }

    /// A data folder and key of its own, with the store in `db` (either backend).
    pub fn on(db: &super::TestDb) -> Kw {
        Kw {
            database_url: Some(db.url.clone()),
            ..Kw::new()
        }
    }

    /// The command with a clean environment: this test's data folder and key.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("KEYWARD_DATA_DIR", self.dir.path())
            .env("KEYWARD_MASTER_KEY", self.key.base64())
            .env("USER", "tester")
            .env_remove("KEYWARD_MASTER_KEY_PREVIOUS")
            .env_remove("KEYWARD_LISTEN")
            .env_remove("KEYWARD_LOG")
            .env_remove("KEYWARD_LOG_FORMAT")
            .env_remove("KEYWARD_CONFIG")
            // A test server must never tell a real systemd it is ready.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("KEYWARD_AUDIT_CHECKPOINT")
            .env_remove("KEYWARD_AUDIT_CHECKPOINT_EVERY");
        match &self.database_url {
            Some(url) => cmd.env("KEYWARD_DATABASE_URL", url),
            None => cmd.env_remove("KEYWARD_DATABASE_URL"),
        };
        cmd
    }

    /// Runs with `stdin` and returns the output.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with(self.cmd(args), stdin)
    }

    /// `secret get NAME --scope SCOPE`: the value (without a trailing
    /// newline), or none if the command failed.
    pub fn secret_value(&self, scope: &str, name: &str) -> Option<String> {
        let args = [
            "secret",
            "get",
            name,
            "--scope",
            scope,
            "--reason",
            "test check",
        ];
        let out = self.run(&args, b"");
        out.status
            .success()
            .then(|| text(&out.stdout).trim_end().to_owned())
    }

    /// Asserts that `secret get NAME --scope SCOPE` answers `expected`
    /// (`None`: no such secret).
    pub fn assert_secret(&self, scope: &str, name: &str, expected: Option<&str>) {
        assert_eq!(
            self.secret_value(scope, name).as_deref(),
            expected,
            "{scope}/{name}"
        );
    }

    /// `keyward migrate ARGS…`, with no input.
    pub fn migrate(&self, args: &[&str]) -> Output {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        self.run(&all, b"")
    }

    /// `keyward migrate run ARGS…`, which must exit 1 (some items failed)
    /// with `summary` in its report; the report.
    pub fn migrate_failing(&self, args: &[&str], summary: &str) -> String {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let out = self.migrate(&all);
        let stdout = text(&out.stdout);
        assert_eq!(
            code(&out),
            1,
            "failures exit 1: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains(summary), "{stdout}");
        stdout
    }

    /// `token create --name NAME --role ROLE`: the token.
    pub fn token(&self, name: &str, role: &str) -> String {
        self.ok(&["token", "create", "--name", name, "--role", role], b"")
            .trim()
            .to_owned()
    }

    /// `keyward serve` on a free port of 127.0.0.1, its stderr in
    /// `<data dir>/<log>`.
    pub fn serve(&self, log: &str) -> Served {
        Served::spawn(
            self.cmd(&["serve", "--listen", "127.0.0.1:0"]),
            &self.dir.path().join(log),
        )
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "keyward {args:?} failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// Sends one HTTP/1.1 request to `addr` (`127.0.0.1:PORT`) over a plain
/// socket and returns the whole response, status line and headers
/// included: the CLI tests look at exactly what the server wrote.
pub fn http(addr: &str, method: &str, path: &str, bearer: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let auth = bearer.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// A running `keyward serve`, killed when dropped.
pub struct Served {
    /// The process (stdout already read up to the address line).
    pub child: Child,
    /// `127.0.0.1:PORT`, from the line `keyward listening on http://…`.
    pub addr: String,
}

impl Served {
    /// Spawns `cmd` (a `serve --listen 127.0.0.1:0` command), its stderr
    /// going to the file `log` (a pipe nobody reads would fill up), and
    /// waits for the address line it prints first.
    pub fn spawn(mut cmd: Command, log: &std::path::Path) -> Served {
        let log = std::fs::File::create(log).expect("create the serve log");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn keyward serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the address line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Served { child, addr }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_with(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keyward");
    child.stdin.take().expect("stdin").write_all(stdin).ok();
    child.wait_with_output().expect("wait")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}
