//! `e2e-ref client`: the client role on a TCP connection to `e2e-ref serve`, driven from the
//! terminal (issue 14, item 3).
//!
//! One command per line on standard input:
//!
//! | command | does |
//! |---|---|
//! | `send NAME TEXT` | sends TEXT to NAME: end to end with `--e2e`, else hop |
//! | `safety-number NAME` | prints the safety number of the session with NAME (e2e) |
//! | `verify NAME NUMBER` | pins NAME's identity if NUMBER is that safety number (e2e, SPEC.md §14.2) |
//! | `quit` | ends |
//!
//! Events print as they happen, as text or (with `--json`) one JSON object per line. The library's
//! [`Client`] is the only protocol logic; this driver owns the socket and the terminal.
//!
//! **State.** The client's whole state — its static key, e2e identity and prekeys, sessions,
//! ratchets, replay windows, message counter — lives in the `--state` file ([`StateFile`]), in the
//! format of SPEC.md §18: created on the first run, read back on the next, and rewritten atomically
//! (a temporary file created `0600`, fsync, rename, fsync of the directory) after every change and
//! before any frame that change produced is written to the socket (§18.5). It is the only place
//! the client writes a secret. A restarted client keeps its name and continues its sessions.

use std::net::SocketAddr;
use std::path::PathBuf;

use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, ClientOutputs, FramePool};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::{Body, HEADER_LEN, LinkFrame, Name, frame_len};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::events;

/// How to run the client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The relay's address.
    pub connect: SocketAddr,
    /// The relay's static public key (printed by `e2e-ref serve`).
    pub server_key: PublicKey,
    /// This client's name.
    pub name: Name,
    /// The client's state file (see [`StateFile`]).
    pub state: PathBuf,
    /// Speak e2e (upload a bundle, send end to end, accept only e2e messages).
    pub e2e: bool,
    /// Print events as JSON lines.
    pub json: bool,
    /// Seeds the client's RNG (keys and ephemerals) for reproducible tests; `None`: the OS RNG.
    pub seed: Option<u64>,
}

/// Why the client stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket or the terminal failed.
    Io(std::io::Error),
    /// The relay sent a frame the client refused as an error, or closed the connection.
    Disconnected(String),
    /// The relay refused the registration.
    Refused(String),
    /// The operating system's RNG failed.
    Rng,
    /// The state file does not restore, or belongs to another client.
    State(String),
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Disconnected(why) => write!(f, "disconnected: {why}"),
            Self::Refused(why) => write!(f, "refused: {why}"),
            Self::Rng => f.write_str("the operating system's RNG failed"),
            Self::State(why) => write!(f, "state file {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// The client's state file (SPEC.md §2.3, §18): the only place its secrets are written.
#[derive(Debug, Clone)]
pub struct StateFile {
    /// The file.
    pub path: PathBuf,
}

impl StateFile {
    /// The client kept in the file; or, if there is no file, a new one (new keys from `rng`),
    /// saved at once so that its keys outlive this run.
    ///
    /// # Errors
    /// [`ClientError::State`] if the file does not restore, or holds another client (another
    /// name, server key or protocol) than the one asked for; [`ClientError::Io`] if it cannot be
    /// read or written.
    pub fn load_or_create(
        &self,
        name: Name,
        server_key: PublicKey,
        e2e: bool,
        rng: &mut ChaCha20Rng,
    ) -> Result<Client, ClientError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let bytes = zeroize::Zeroizing::new(bytes);
                let client = Client::restore_state(&bytes)
                    .map_err(|e| ClientError::State(format!("{}: {e}", self.path.display())))?;
                let mismatch = if *client.name() != name {
                    Some(format!("it is {}'s, not {name}'s", client.name()))
                } else if client.server_key() != server_key {
                    Some("it is for another server key".to_owned())
                } else if client.identity().is_some() != e2e {
                    Some(
                        if e2e {
                            "it has no e2e identity (drop --e2e)"
                        } else {
                            "it is an e2e client (add --e2e)"
                        }
                        .to_owned(),
                    )
                } else {
                    None
                };
                match mismatch {
                    Some(why) => Err(ClientError::State(format!("{}: {why}", self.path.display()))),
                    None => Ok(client),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let static_key = PrivateKey::generate(rng);
                let client = if e2e {
                    Client::with_e2e(name, static_key, server_key, Peers::generate(rng))
                } else {
                    Client::new(name, static_key, server_key)
                };
                self.save(&client)?;
                Ok(client)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `client`'s state over the file, atomically: a temporary file beside it, created
    /// with mode `0600`, written in full and flushed to disk, renamed over the file, then the
    /// directory flushed (SPEC.md §18.5). A reader sees the old state or the new, never a mix.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn save(&self, client: &Client) -> Result<(), ClientError> {
        use std::io::Write as _;
        let state = client.export_state();
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        // A leftover of a crash mid-write was never renamed, so it was never the state.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(state.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        #[cfg(unix)]
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    }
}

/// Connects, registers, and runs the command loop on `commands` until `quit`, the end of input,
/// or the connection ends. Events and answers go to standard output.
///
/// # Errors
/// [`ClientError`]: the connection or the registration failed, or the relay ended the connection.
pub async fn run<I: AsyncRead + Unpin>(
    config: ClientConfig,
    commands: I,
) -> Result<(), ClientError> {
    let mut rng = match config.seed {
        Some(seed) => ChaCha20Rng::seed_from_u64(seed),
        None => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|_| ClientError::Rng)?;
            ChaCha20Rng::from_seed(seed)
        }
    };
    let state = StateFile { path: config.state.clone() };
    let client =
        state.load_or_create(config.name.clone(), config.server_key, config.e2e, &mut rng)?;
    let stream = TcpStream::connect(config.connect).await?;
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let mut session =
        Session { client, rng, state, json: config.json, e2e: config.e2e, pool: FramePool::new() };
    let init = session.client.connect(&mut session.rng).map_err(disconnected)?;
    write.write_all(&init).await?;
    let mut lines = BufReader::new(commands).lines();
    // The buffers kept from frame to frame (see `Session::after`): the frame read, the client's
    // outputs, and what goes out next, written at once.
    let mut frame = Vec::new();
    let mut out = ClientOutputs::default();
    let mut wire = Vec::new();
    loop {
        tokio::select! {
            read = read_frame_into(&mut read, &mut frame) => {
                if !read? {
                    return Err(ClientError::Disconnected("the relay closed the connection".into()));
                }
                let rng = &mut session.rng;
                session
                    .client
                    .handle_in_place(&mut frame, rng, &mut out, &mut session.pool)
                    .map_err(disconnected)?;
                session.after(&mut out, &mut wire)?;
            }
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                if let Step::Quit = session.command(line.trim(), &mut wire)? {
                    return Ok(());
                }
            }
        }
        if !wire.is_empty() {
            write.write_all(&wire).await?;
            wire.clear();
        }
    }
}

fn disconnected(e: e2e_protocol::Error) -> ClientError {
    ClientError::Disconnected(e.to_string())
}

/// One frame, as SPEC.md §3 frames it: `None` when the relay closed between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    read: &mut R,
) -> Result<Option<Vec<u8>>, ClientError> {
    let mut frame = Vec::new();
    Ok(read_frame_into(read, &mut frame).await?.then_some(frame))
}

/// One frame into `frame`, which grows only if it is too small: `false` when the relay closed
/// between frames.
async fn read_frame_into<R: AsyncRead + Unpin>(
    read: &mut R,
    frame: &mut Vec<u8>,
) -> Result<bool, ClientError> {
    let mut header = [0u8; HEADER_LEN];
    match read.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len::<LinkFrame>(&header)
        .map_err(|e| ClientError::Disconnected(e.to_string()))?
        .ok_or_else(|| ClientError::Disconnected("short header".into()))?;
    frame.clear();
    frame.extend_from_slice(&header);
    frame.resize(len, 0);
    let body = frame
        .get_mut(HEADER_LEN..)
        .ok_or_else(|| ClientError::Disconnected("short frame".into()))?;
    read.read_exact(body).await?;
    Ok(true)
}

/// What a command asks the loop to do.
enum Step {
    /// Write what the command put on the wire (possibly nothing), and go on.
    Write,
    /// End.
    Quit,
}

struct Session {
    client: Client,
    rng: ChaCha20Rng,
    state: StateFile,
    json: bool,
    e2e: bool,
    /// The buffers the client seals frames into and reads bodies into, given back once written
    /// or printed.
    pool: FramePool,
}

impl Session {
    /// Prints `out`'s events, saves the state, then puts `out`'s frames on `wire`, followed by the
    /// frames the driver sends on its own account (an e2e client's first bundle upload, once
    /// connected); empties `out`'s lists, keeping their room, and gives their buffers back to the
    /// pool. Nothing reaches `wire` unless the state was saved (SPEC.md §18.5).
    fn after(&mut self, out: &mut ClientOutputs, wire: &mut Vec<u8>) -> Result<(), ClientError> {
        for event in out.events.drain(..) {
            self.print_event(&event);
            match event {
                ClientEvent::Connected if self.e2e => {
                    out.transmit.push(self.client.upload_bundle().map_err(disconnected)?);
                }
                ClientEvent::Refused(reason) => {
                    return Err(ClientError::Refused(format!("{reason:?}")));
                }
                ClientEvent::Received { body, .. } => self.pool.recycle(body.into_bytes()),
                _ => {}
            }
        }
        self.state.save(&self.client)?;
        for sealed in out.transmit.drain(..) {
            wire.extend_from_slice(&sealed);
            self.pool.recycle(sealed);
        }
        Ok(())
    }

    /// Runs one command line, putting the frames it sends on `wire`. A state file that cannot be
    /// written stops the client: frames the change produced are not sent (SPEC.md §18.5).
    fn command(&mut self, line: &str, wire: &mut Vec<u8>) -> Result<Step, ClientError> {
        let mut words = line.splitn(3, ' ');
        let (verb, who, rest) = (words.next(), words.next(), words.next());
        let peer = who.and_then(|w| Name::new(w).ok());
        Ok(match (verb, peer, rest) {
            (Some("quit"), None, None) => Step::Quit,
            (Some(""), None, None) | (None, _, _) => Step::Write,
            (Some("send"), Some(to), Some(text)) => match Body::new(text.as_bytes().to_vec()) {
                Ok(body) => self.send(&to, body, wire)?,
                Err(e) => self.complain(&e.to_string()),
            },
            (Some("safety-number"), Some(peer), None) => {
                match self.client.safety_number(&peer) {
                    Some(number) => self.print(
                        &format!("safety number with {peer}: {number}"),
                        json!({"event": "safety_number", "peer": peer.as_str(), "number": number.to_string()}),
                    ),
                    None => {
                        self.complain(&format!("no e2e session with {peer}"));
                    }
                }
                Step::Write
            }
            (Some("verify"), Some(peer), Some(number)) => {
                let typed: String = number.chars().filter(char::is_ascii_digit).collect();
                // The number is compared in constant time by the library; the digits typed are
                // matched here to the session's own number, which is what the library takes.
                let ours = self.client.safety_number(&peer);
                let matches = ours.as_ref().is_some_and(|n| {
                    n.digits().chars().filter(char::is_ascii_digit).collect::<String>() == typed
                });
                let verified = match (ours, matches) {
                    (Some(ours), true) => self.client.verify_safety_number(&peer, &ours).is_ok(),
                    _ => false,
                };
                self.print(
                    &if verified {
                        format!("{peer} verified: a key change is now refused")
                    } else {
                        format!("{peer} NOT verified: the numbers differ, or there is no session")
                    },
                    json!({"event": "verified", "peer": peer.as_str(), "ok": verified}),
                );
                self.state.save(&self.client)?;
                Step::Write
            }
            _ => self.complain(
                "commands: send NAME TEXT | safety-number NAME | verify NAME NUMBER | quit",
            ),
        })
    }

    /// Seals `body` for `to` onto `wire`: straight into it ([`Client::send_into`],
    /// [`Client::send_e2e_into`]), or, for an e2e peer without a session yet, through
    /// [`Client::send_e2e`], which asks for the peer's bundle first. A frame that was sealed stays
    /// on `wire` only if the state is then saved.
    fn send(&mut self, to: &Name, body: Body, wire: &mut Vec<u8>) -> Result<Step, ClientError> {
        let start = wire.len();
        let sent = if self.e2e {
            match self.client.send_e2e_into(to, &body, &mut self.rng, wire) {
                // What `send_e2e` reports for a peer with a session.
                Ok(id) => Ok(vec![ClientEvent::Sent { to: to.clone(), id }]),
                Err(e2e_protocol::Error::E2e(E2eError::NoSession { .. })) => {
                    self.client.send_e2e(to, body, &mut self.rng).map(|out| {
                        for sealed in out.transmit {
                            wire.extend_from_slice(&sealed);
                        }
                        out.events
                    })
                }
                Err(e) => Err(e),
            }
        } else {
            self.client.send_into(to, &body, wire).map(|_| Vec::new())
        };
        if let Ok(events) = &sent {
            for event in events {
                self.print_event(event);
            }
        }
        if let Err(e) = self.state.save(&self.client) {
            wire.truncate(start);
            return Err(e);
        }
        Ok(match sent {
            Ok(_) => Step::Write,
            Err(e) => self.complain(&e.to_string()),
        })
    }

    fn complain(&self, why: &str) -> Step {
        self.print(&format!("error: {why}"), json!({"event": "error", "error": why}));
        Step::Write
    }

    fn print(&self, text: &str, value: serde_json::Value) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }

    fn print_event(&self, event: &ClientEvent) {
        self.print(&events::text(event), events::json(event));
    }
}
