//! Helpers shared by the relay's integration tests (tests/serve.rs, tests/store.rs, tests/load.rs):
//! a temporary directory, a running relay, and reading one link frame off a socket.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use e2e_protocol::suite::PublicKey;
use e2e_protocol::wire::{HEADER_LEN, LinkFrame, frame_len};

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

/// A running `e2e-ref serve`; killed (SIGKILL) on drop.
pub struct Relay {
    pub child: Child,
    pub addr: SocketAddr,
    pub key: PublicKey,
}

impl Relay {
    /// Starts it on `data` with the further options `extra`, and reads its key and address.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-ref"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let key_line = lines.next().unwrap().unwrap();
        let addr_line = lines.next().unwrap().unwrap();
        let key = key_line.strip_prefix("public key: ").unwrap();
        let key: [u8; 32] = hex::decode(key).unwrap().try_into().unwrap();
        let addr = addr_line.strip_prefix("listening on ").unwrap().parse().unwrap();
        Self { child, addr, key: PublicKey::from_bytes(key) }
    }

    /// SIGKILL, as a crash: no destructor, no flush, nothing.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one link frame as the relay does: header, length check, body. `None` on EOF or error.
pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).ok()?;
    let len = frame_len::<LinkFrame>(&header).ok()??;
    let mut frame = vec![0u8; len];
    frame[..HEADER_LEN].copy_from_slice(&header);
    stream.read_exact(&mut frame[HEADER_LEN..]).ok()?;
    Some(frame)
}
