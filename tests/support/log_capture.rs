//! The host's `tracing` output captured in memory, so a test can look for a
//! value that must never be logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the host's log printed during this test process.
pub fn captured() -> String {
    let buf = log_buffer().lock().expect("log buffer");
    String::from_utf8_lossy(&buf).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test process).
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let buf = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("keyward=debug")
            .with_ansi(false)
            .with_writer(move || Capture(buf.clone()))
            .try_init();
    });
}
