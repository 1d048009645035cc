//! `e2e-ref shim`: the reference client speaking the shim protocol of spec/INTEROP.md on standard
//! input and output, one JSON object per line.
//!
//! It reuses the terminal client's [`StateFile`] (SPEC.md §18: saved after every change, before any
//! frame that change produced is written) and the library's [`Client`]; this module only owns the
//! socket and translates commands and events to and from JSON.

use std::net::SocketAddr;

use e2e_protocol::Error;
use e2e_protocol::roles::{Client, ClientEvent, ClientOutputs};
use e2e_protocol::suite::{PublicKey, VerifyingKey};
use e2e_protocol::wire::{Body, Envelope, IdentityPublic, Name};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::client::{ClientError, StateFile, read_frame};
use crate::events::{self, class};

/// A refusal of one command: `{"ok":false,"error":CLASS,"detail":TEXT}`.
struct Refusal {
    class: &'static str,
    detail: String,
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Self { class: class(&e), detail: format!("{e:?}") }
    }
}

impl From<ClientError> for Refusal {
    fn from(e: ClientError) -> Self {
        Self { class: "Shim", detail: e.to_string() }
    }
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Self { class: "Io", detail: e.to_string() }
    }
}

fn shim(detail: impl Into<String>) -> Refusal {
    Refusal { class: "Shim", detail: detail.into() }
}

/// What the connection's reader task reports.
enum Incoming {
    Frame(Vec<u8>),
    Closed(String),
}

struct Conn {
    write: OwnedWriteHalf,
    rx: mpsc::Receiver<Incoming>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Started {
    client: Client,
    rng: ChaCha20Rng,
    state: StateFile,
    server: SocketAddr,
    e2e: bool,
    /// Envelopes sealed by `seal`, by handle; in memory only (not in the state file).
    sealed: Vec<(Name, Envelope)>,
}

/// The shim's whole state.
#[derive(Default)]
struct Shim {
    started: Option<Started>,
    conn: Option<Conn>,
}

fn emit(value: &Value) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn field<'a>(command: &'a Value, key: &str) -> Result<&'a str, Refusal> {
    command
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| shim(format!("missing string \"{key}\"")))
}

fn name_field(command: &Value, key: &str) -> Result<Name, Refusal> {
    Name::new(field(command, key)?).map_err(|e| shim(format!("\"{key}\": {e}")))
}

fn body_field(command: &Value) -> Result<Body, Refusal> {
    Body::new(field(command, "text")?.as_bytes().to_vec()).map_err(|e| shim(e.to_string()))
}

impl Shim {
    fn started(&mut self) -> Result<&mut Started, Refusal> {
        self.started.as_mut().ok_or_else(|| shim("no \"start\" yet"))
    }

    /// Writes `frames` to the connection, in order.
    async fn transmit(&mut self, frames: &[Vec<u8>]) -> Result<(), Refusal> {
        if frames.is_empty() {
            return Ok(());
        }
        let conn = self.conn.as_mut().ok_or_else(|| shim("not connected"))?;
        for frame in frames {
            conn.write.write_all(frame).await?;
        }
        Ok(())
    }

    /// Prints `out`'s events, saves the state, then sends `out`'s frames and any bundle upload the
    /// events call for.
    async fn after(&mut self, out: ClientOutputs) -> Result<(), Refusal> {
        let started = self.started()?;
        let mut frames = out.transmit;
        let mut refused = false;
        for event in &out.events {
            emit(&events::json(event));
            match event {
                ClientEvent::Connected if started.e2e => {
                    frames.push(started.client.upload_bundle()?);
                }
                ClientEvent::Refused(_) => refused = true,
                _ => {}
            }
        }
        started.state.save(&started.client)?;
        if refused {
            self.close("refused");
            return Ok(());
        }
        self.transmit(&frames).await
    }

    fn close(&mut self, reason: &str) {
        if self.conn.take().is_some() {
            if let Some(started) = self.started.as_mut() {
                started.client.disconnect();
            }
            emit(&json!({"event": "disconnected", "reason": reason}));
        }
    }

    async fn incoming(&mut self, incoming: Incoming) -> Result<(), Refusal> {
        match incoming {
            Incoming::Closed(why) => {
                self.close(&why);
                Ok(())
            }
            Incoming::Frame(frame) => {
                let started = self.started()?;
                match started.client.handle(&frame, &mut started.rng) {
                    Ok(out) => self.after(out).await,
                    Err(e) => {
                        // A frame that did not authenticate: the client is unchanged, but the
                        // link cannot go on (SPEC.md §7.2).
                        self.close(&format!("{} error: {e:?}", class(&e)));
                        Ok(())
                    }
                }
            }
        }
    }

    /// Runs one command; `Ok(None)` for `quit`.
    async fn command(&mut self, command: &Value) -> Result<Option<Value>, Refusal> {
        let cmd = field(command, "cmd")?;
        let answer = match cmd {
            "start" => self.start(command)?,
            "connect" => self.connect().await?,
            "disconnect" => {
                self.started()?;
                self.close("asked");
                let started = self.started()?;
                started.state.save(&started.client)?;
                json!({})
            }
            "send" => self.send(command).await?,
            "seal" => {
                let to = name_field(command, "to")?;
                let body = body_field(command)?;
                let started = self.started()?;
                let envelope = started.client.seal_e2e(&to, &body, &mut started.rng)?;
                started.state.save(&started.client)?;
                started.sealed.push((to, envelope));
                json!({"handle": started.sealed.len() - 1})
            }
            "submit" => {
                let handle = command
                    .get("handle")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| shim("missing number \"handle\""))?;
                let started = self.started()?;
                let (to, envelope) = usize::try_from(handle)
                    .ok()
                    .and_then(|h| started.sealed.get(h))
                    .cloned()
                    .ok_or_else(|| shim("no such handle"))?;
                let (id, frame) = started.client.submit_e2e(&to, envelope)?;
                started.state.save(&started.client)?;
                self.transmit(&[frame]).await?;
                json!({"id": id.0})
            }
            "safety_number" => {
                let peer = name_field(command, "peer")?;
                let started = self.started()?;
                let number = started.client.safety_number(&peer).ok_or_else(|| Refusal {
                    class: "E2e",
                    detail: format!("NoSession {{ name: {peer} }}"),
                })?;
                json!({"number": number.digits()})
            }
            "verify" => {
                let peer = name_field(command, "peer")?;
                let typed: String =
                    field(command, "number")?.chars().filter(char::is_ascii_digit).collect();
                let started = self.started()?;
                let ours = started.client.safety_number(&peer);
                let verified = match ours {
                    Some(ours) if ours.digits() == typed => {
                        started.client.verify_safety_number(&peer, &ours).is_ok()
                    }
                    _ => false,
                };
                started.state.save(&started.client)?;
                json!({"verified": verified})
            }
            "pin" => {
                let peer = name_field(command, "peer")?;
                let bytes: [u8; 64] = hex::decode(field(command, "identity")?)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| shim("\"identity\": not 128 hex digits"))?;
                let (dh, sign) = bytes.split_at(32);
                let identity = IdentityPublic {
                    dh: PublicKey::from_bytes(dh.try_into().map_err(|_| shim("identity"))?),
                    sign: VerifyingKey::from_bytes(sign.try_into().map_err(|_| shim("identity"))?),
                };
                let started = self.started()?;
                started.client.verify_peer(peer, identity)?;
                started.state.save(&started.client)?;
                json!({})
            }
            "quit" => return Ok(None),
            other => return Err(shim(format!("unknown command {other:?}"))),
        };
        Ok(Some(answer))
    }

    fn start(&mut self, command: &Value) -> Result<Value, Refusal> {
        if self.started.is_some() {
            return Err(shim("already started"));
        }
        let server: SocketAddr =
            field(command, "server")?.parse().map_err(|_| shim("\"server\": not HOST:PORT"))?;
        let key: [u8; 32] = hex::decode(field(command, "server_key")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| shim("\"server_key\": not 64 hex digits"))?;
        let name = name_field(command, "name")?;
        let state = StateFile { path: field(command, "state")?.into() };
        let e2e = command.get("e2e").and_then(Value::as_bool).unwrap_or(false);
        let mut rng = match command.get("seed").and_then(Value::as_u64) {
            Some(seed) => ChaCha20Rng::seed_from_u64(seed),
            None => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|_| shim("the OS RNG failed"))?;
                ChaCha20Rng::from_seed(seed)
            }
        };
        let client = state.load_or_create(name, PublicKey::from_bytes(key), e2e, &mut rng)?;
        let identity = client.identity().map(|i| hex::encode(i.to_bytes()));
        self.started = Some(Started { client, rng, state, server, e2e, sealed: Vec::new() });
        Ok(json!({"identity": identity}))
    }

    async fn connect(&mut self) -> Result<Value, Refusal> {
        if self.conn.is_some() {
            return Err(Refusal { class: "Misuse", detail: "AlreadyConnected".into() });
        }
        let started = self.started()?;
        let stream = TcpStream::connect(started.server).await?;
        stream.set_nodelay(true)?;
        let init = started.client.connect(&mut started.rng)?;
        let (mut read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            loop {
                let incoming = match read_frame(&mut read).await {
                    Ok(Some(frame)) => Incoming::Frame(frame),
                    Ok(None) => Incoming::Closed("the relay closed the connection".into()),
                    Err(e) => Incoming::Closed(e.to_string()),
                };
                let closed = matches!(incoming, Incoming::Closed(_));
                if tx.send(incoming).await.is_err() || closed {
                    return;
                }
            }
        });
        self.conn = Some(Conn { write, rx, reader });
        self.transmit(&[init]).await?;
        Ok(json!({}))
    }

    async fn send(&mut self, command: &Value) -> Result<Value, Refusal> {
        let to = name_field(command, "to")?;
        let body = body_field(command)?;
        let started = self.started()?;
        if started.e2e {
            let out = started.client.send_e2e(&to, body, &mut started.rng)?;
            let id = out.events.iter().find_map(|e| match e {
                ClientEvent::Sent { id, .. } => Some(id.0),
                _ => None,
            });
            self.after(out).await?;
            Ok(json!({"id": id}))
        } else {
            let (id, frame) = started.client.send(&to, body)?;
            started.state.save(&started.client)?;
            self.transmit(&[frame]).await?;
            Ok(json!({"id": id.0}))
        }
    }
}

/// Runs the shim on `commands` until `quit` or the end of input. Answers and events go to
/// standard output.
///
/// # Errors
/// Reading `commands` failed.
pub async fn run<I: AsyncRead + Unpin>(commands: I) -> std::io::Result<()> {
    let mut me = Shim::default();
    let mut lines = BufReader::new(commands).lines();
    loop {
        let incoming = async {
            match me.conn.as_mut() {
                Some(conn) => conn.rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = incoming => {
                let incoming = incoming.unwrap_or(Incoming::Closed("reader ended".into()));
                if let Err(refusal) = me.incoming(incoming).await {
                    emit(&json!({"event": "error", "error": refusal.class, "detail": refusal.detail}));
                }
            }
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                if line.trim().is_empty() {
                    continue;
                }
                let answer = match serde_json::from_str::<Value>(&line) {
                    Ok(command) => me.command(&command).await,
                    Err(e) => Err(shim(format!("not JSON: {e}"))),
                };
                match answer {
                    Ok(Some(Value::Object(mut fields))) => {
                        fields.insert("ok".into(), Value::Bool(true));
                        emit(&Value::Object(fields));
                    }
                    Ok(Some(_)) => emit(&json!({"ok": true})),
                    Ok(None) => {
                        emit(&json!({"ok": true}));
                        return Ok(());
                    }
                    Err(refusal) => emit(&json!({"ok": false, "error": refusal.class, "detail": refusal.detail})),
                }
            }
        }
    }
}
