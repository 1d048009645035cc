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

use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, ClientOutputs};
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
    let mut session = Session { client, rng, state, json: config.json, e2e: config.e2e };
    let init = session.client.connect(&mut session.rng).map_err(disconnected)?;
    write.write_all(&init).await?;
    let mut lines = BufReader::new(commands).lines();
    loop {
        tokio::select! {
            frame = read_frame(&mut read) => {
                let Some(frame) = frame? else {
                    return Err(ClientError::Disconnected("the relay closed the connection".into()));
                };
                let out = session.client.handle(&frame, &mut session.rng).map_err(disconnected)?;
                let extra = session.after(&out)?;
                for frame in out.transmit.iter().chain(&extra) {
                    write.write_all(frame).await?;
                }
            }
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                match session.command(line.trim())? {
                    Step::Send(frames) => {
                        for frame in frames {
                            write.write_all(&frame).await?;
                        }
                    }
                    Step::Quit => return Ok(()),
                }
            }
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
    let mut header = [0u8; HEADER_LEN];
    match read.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len::<LinkFrame>(&header)
        .map_err(|e| ClientError::Disconnected(e.to_string()))?
        .ok_or_else(|| ClientError::Disconnected("short header".into()))?;
    let mut frame = vec![0u8; len];
    let (head, body) = frame
        .split_at_mut_checked(HEADER_LEN)
        .ok_or_else(|| ClientError::Disconnected("short frame".into()))?;
    head.copy_from_slice(&header);
    read.read_exact(body).await?;
    Ok(Some(frame))
}

/// What a command asks the loop to do.
enum Step {
    /// Write these frames (possibly none).
    Send(Vec<Vec<u8>>),
    /// End.
    Quit,
}

struct Session {
    client: Client,
    rng: ChaCha20Rng,
    state: StateFile,
    json: bool,
    e2e: bool,
}

impl Session {
    /// Prints `out`'s events, saves the state, and returns frames the driver sends on its own
    /// account (an e2e client's first bundle upload, once connected).
    fn after(&mut self, out: &ClientOutputs) -> Result<Vec<Vec<u8>>, ClientError> {
        let mut extra = Vec::new();
        for event in &out.events {
            self.print_event(event);
            match event {
                ClientEvent::Connected if self.e2e => {
                    extra.push(self.client.upload_bundle().map_err(disconnected)?);
                }
                ClientEvent::Refused(reason) => {
                    return Err(ClientError::Refused(format!("{reason:?}")));
                }
                _ => {}
            }
        }
        self.state.save(&self.client)?;
        Ok(extra)
    }

    /// Runs one command line. A state file that cannot be written stops the client: frames the
    /// change produced are not sent (SPEC.md §18.5).
    fn command(&mut self, line: &str) -> Result<Step, ClientError> {
        let mut words = line.splitn(3, ' ');
        let (verb, who, rest) = (words.next(), words.next(), words.next());
        let peer = who.and_then(|w| Name::new(w).ok());
        Ok(match (verb, peer, rest) {
            (Some("quit"), None, None) => Step::Quit,
            (Some(""), None, None) | (None, _, _) => Step::Send(Vec::new()),
            (Some("send"), Some(to), Some(text)) => match Body::new(text.as_bytes().to_vec()) {
                Ok(body) => self.send(&to, body)?,
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
                Step::Send(Vec::new())
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
                Step::Send(Vec::new())
            }
            _ => self.complain(
                "commands: send NAME TEXT | safety-number NAME | verify NAME NUMBER | quit",
            ),
        })
    }

    fn send(&mut self, to: &Name, body: Body) -> Result<Step, ClientError> {
        let sent = if self.e2e {
            self.client.send_e2e(to, body, &mut self.rng).map(|out| {
                for event in &out.events {
                    self.print_event(event);
                }
                out.transmit
            })
        } else {
            self.client.send(to, body).map(|(_, frame)| vec![frame])
        };
        self.state.save(&self.client)?;
        Ok(match sent {
            Ok(frames) => Step::Send(frames),
            Err(e) => self.complain(&e.to_string()),
        })
    }

    fn complain(&self, why: &str) -> Step {
        self.print(&format!("error: {why}"), json!({"event": "error", "error": why}));
        Step::Send(Vec::new())
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
