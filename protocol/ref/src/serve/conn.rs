//! One connection: a reader that turns bytes into whole frames for the actor, and a writer that
//! writes what the actor queued, in order.
//!
//! The reader reads a 6-byte header, checks it with [`frame_len`] (version, type, and a declared
//! length within `MAX_FRAME_LEN`, SPEC.md §3.4 checks 2–4) *before* sizing the body's buffer, then
//! reads exactly that many bytes. So a connection never holds more than one frame of at most 65541
//! bytes, and garbage or an oversized header ends it at the sixth byte.
//!
//! Neither side allocates a frame's buffer of its own: the reader takes a spare one from
//! [`ActorHandle::buffers`] (the actor gives it back once the server has decrypted the frame in
//! it), and the writer gives each frame's buffer back there once the frame is written.

use std::sync::Arc;

use e2e_protocol::roles::LinkId;
use e2e_protocol::wire::{HEADER_LEN, LinkFrame, frame_len};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::{Instant, timeout, timeout_at};

use super::Limits;
use super::actor::{ActorHandle, Command, Outbound};

/// Serves one connection as `link` until either side ends it. `_slot` is its place under the
/// connection limit, given back when this returns.
pub async fn run(
    stream: TcpStream,
    link: LinkId,
    actor: ActorHandle,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
) {
    let (out, queued) = mpsc::channel(limits.outbound_frames.max(1));
    let kill = Arc::new(Notify::new());
    if actor.send(Command::Open { link, out, kill: Arc::clone(&kill) }).await.is_err() {
        return;
    }
    let (mut read, write) = stream.into_split();
    tokio::select! {
        () = read_frames(&mut read, link, &actor, limits) => {}
        () = write_frames(write, queued, &actor, limits) => {}
        () = kill.notified() => {}
    }
    let _ = actor.send(Command::Closed { link }).await;
}

/// Reads frames and hands them to the actor until the peer closes, sends a bad header, or times
/// out: the first two frames (`HandshakeInit`, `Ready`) within `handshake_timeout` of the start,
/// then each header within `idle_timeout`, and each body within `frame_timeout` of its header.
async fn read_frames<R: AsyncRead + Unpin>(
    read: &mut R,
    link: LinkId,
    actor: &ActorHandle,
    limits: Limits,
) {
    let start = Instant::now();
    for count in 0u64.. {
        let deadline = if count < 2 {
            start + limits.handshake_timeout
        } else {
            Instant::now() + limits.idle_timeout
        };
        let mut frame = actor.buffers().take();
        let Ok(true) = read_frame(read, &mut frame, deadline, limits).await else { return };
        if actor.send(Command::Frame { link, frame }).await.is_err() {
            return;
        }
    }
}

/// One frame into `frame` (an empty buffer, which grows only if it is too small): its header by
/// `deadline`, its body within `frame_timeout` after. `Ok(true)` once it is read, `Ok(false)`
/// when the peer closed cleanly between frames; `Err` for anything else (a bad header, a timeout,
/// a connection that ended inside a frame).
async fn read_frame<R: AsyncRead + Unpin>(
    read: &mut R,
    frame: &mut Vec<u8>,
    deadline: Instant,
    limits: Limits,
) -> Result<bool, ConnectionEnded> {
    let mut header = [0u8; HEADER_LEN];
    let first = timeout_at(deadline, read.read(&mut header)).await;
    let got = first.map_err(|_| ConnectionEnded)?.map_err(|_| ConnectionEnded)?;
    if got == 0 {
        return Ok(false);
    }
    if got < HEADER_LEN {
        let rest = header.get_mut(got..).ok_or(ConnectionEnded)?;
        timeout(limits.frame_timeout, read.read_exact(rest))
            .await
            .map_err(|_| ConnectionEnded)?
            .map_err(|_| ConnectionEnded)?;
    }
    // Checked before the body's room is made: a bad version, type or length ends the connection.
    let len = frame_len::<LinkFrame>(&header).ok().flatten().ok_or(ConnectionEnded)?;
    frame.clear();
    frame.extend_from_slice(&header);
    frame.resize(len, 0);
    let body = frame.get_mut(HEADER_LEN..).ok_or(ConnectionEnded)?;
    timeout(limits.frame_timeout, read.read_exact(body))
        .await
        .map_err(|_| ConnectionEnded)?
        .map_err(|_| ConnectionEnded)?;
    Ok(true)
}

/// The connection ended inside a frame, sent a bad header, or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectionEnded;

/// Writes what the actor queues, in order, each frame within `frame_timeout`; reports each
/// settle marker once everything before it is written; ends on `Close`, an error or a timeout.
async fn write_frames(
    mut write: OwnedWriteHalf,
    mut queued: mpsc::Receiver<Outbound>,
    actor: &ActorHandle,
    limits: Limits,
) {
    while let Some(item) = queued.recv().await {
        match item {
            Outbound::Frame(frame) => {
                match timeout(limits.frame_timeout, write.write_all(&frame)).await {
                    Ok(Ok(())) => actor.buffers().give(frame),
                    _ => return,
                }
            }
            // `write_all` on a TCP stream returns once the kernel holds the bytes (there is no
            // user-space buffer to flush): what this marker reports is "handed to the kernel".
            Outbound::Settle(delivery) => {
                if actor.send(Command::Written(delivery)).await.is_err() {
                    return;
                }
            }
            Outbound::Close => {
                let _ = timeout(limits.frame_timeout, write.shutdown()).await;
                return;
            }
        }
    }
}

/// A connection beyond the limit: reads one frame within `handshake_timeout`; if it is a
/// `HandshakeInit`, answers `Refused { ServerFull }` (SPEC.md §9.2); then closes. `_permit` bounds
/// how many of these run at once.
pub async fn refuse(
    mut stream: TcpStream,
    actor: ActorHandle,
    limits: Limits,
    _permit: OwnedSemaphorePermit,
) {
    let deadline = Instant::now() + limits.handshake_timeout;
    let mut frame = Vec::new();
    let Ok(true) = read_frame(&mut stream, &mut frame, deadline, limits).await else { return };
    let (reply, answer) = oneshot::channel();
    if actor.send(Command::Refuse { frame, reply }).await.is_err() {
        return;
    }
    if let Ok(Some(refusal)) = answer.await {
        let _ = timeout(limits.frame_timeout, stream.write_all(&refusal)).await;
        let _ = timeout(limits.frame_timeout, stream.shutdown()).await;
    }
}
