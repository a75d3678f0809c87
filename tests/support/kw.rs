//! The real `keyward` binary with a data folder and key of its own.

use std::io::Write;
use std::process::{Command, Output, Stdio};

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
            .env_remove("KEYWARD_LOG");
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

    /// `keyward migrate ARGS…`, with no input.
    pub fn migrate(&self, args: &[&str]) -> Output {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        self.run(&all, b"")
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
