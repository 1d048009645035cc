//! Helpers shared by the relay's integration tests (tests/serve.rs, tests/store.rs, tests/load.rs).

#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

/// A fresh directory under the system's temporary directory (never the source tree), removed on
/// drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty directory whose name carries `tag`, the process id and the time.
    pub fn new(tag: &str) -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir =
            std::env::temp_dir().join(format!("e2e-ref-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
