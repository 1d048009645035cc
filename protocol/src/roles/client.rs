//! The client role (Alice, Bob): a sans-IO state machine.
//!
//! The caller owns the I/O. It passes in the frames that arrive from the server and an RNG when one
//! is needed, and sends the frames the client hands back, in order. The client has no clock, no
//! socket and no RNG of its own, so a run is a pure function of its inputs.
//!
//! Every method is transactional: it either succeeds and commits its whole effect, or returns an
//! error and leaves the client exactly as it was (`==` to a clone taken before the call).

use std::collections::BTreeMap;

use rand_core::CryptoRng;

use super::replay::{Refusal, ReplayWindow};
use crate::channel::{Initiator, InitiatorAwaitingResponse, PROLOGUE, Transport};
use crate::error::{Error, MisuseError, ProtocolError};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{
    AckStatus, Body, Codec, LinkFrame, LinkKind, Message, MessageId, Name, RefusalReason,
    RejectReason,
};

/// What the client tells its user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the registration; the channel is open.
    Connected,
    /// The server refused the registration; the client is offline again.
    Refused(RefusalReason),
    /// A message arrived and was accepted (first time this id was seen from this sender).
    Received {
        /// The sender, as the server vouches.
        from: Name,
        /// The sender's id.
        id: MessageId,
        /// The content.
        body: Body,
    },
    /// The server accepted message `id`.
    Acked {
        /// The id from [`Client::send`].
        id: MessageId,
        /// Relayed at once, or queued for an offline recipient.
        status: AckStatus,
    },
    /// The server refused message `id`.
    Rejected {
        /// The id from [`Client::send`].
        id: MessageId,
        /// Why.
        reason: RejectReason,
    },
}

/// The channel to the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Link {
    Offline,
    Handshaking(InitiatorAwaitingResponse),
    Online(Transport),
}

impl Link {
    const fn state_name(&self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Handshaking(_) => "handshaking",
            Self::Online(_) => "online",
        }
    }
}

/// A client: its name and static key, the server's public key, the channel, and what it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client {
    name: Name,
    static_key: PrivateKey,
    server_key: PublicKey,
    link: Link,
    last_id: u64,
    accepted: BTreeMap<Name, ReplayWindow>,
}

impl Client {
    /// A client that will register as `name` with `static_key`, at the server whose static public
    /// key is `server_key` (known in advance: that is what the IK pattern requires).
    #[must_use]
    pub const fn new(name: Name, static_key: PrivateKey, server_key: PublicKey) -> Self {
        Self {
            name,
            static_key,
            server_key,
            link: Link::Offline,
            last_id: 0,
            accepted: BTreeMap::new(),
        }
    }

    /// The client's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// The client's channel static public key.
    #[must_use]
    pub const fn static_public(&self) -> PublicKey {
        self.static_key.public_key()
    }

    /// Whether the channel is open.
    #[must_use]
    pub const fn is_connected(&self) -> bool {
        matches!(self.link, Link::Online(_))
    }

    /// Starts the handshake: returns the `HandshakeInit` frame to send. Draws one ephemeral key.
    ///
    /// # Errors
    /// [`MisuseError::AlreadyConnected`] unless offline; channel errors from the handshake.
    pub fn connect<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<Vec<u8>, Error> {
        if !matches!(self.link, Link::Offline) {
            return Err(MisuseError::AlreadyConnected.into());
        }
        let payload = Message::Register { name: self.name.clone() }.encode();
        let initiator = Initiator::new(PROLOGUE, self.static_key.clone(), self.server_key);
        let (awaiting, noise) = initiator.write_message_1(PrivateKey::generate(rng), &payload)?;
        let frame = LinkFrame::handshake_init(noise)?.encode();
        self.link = Link::Handshaking(awaiting);
        Ok(frame)
    }

    /// Forgets the channel (the connection is gone). Accepted ids and the id counter are kept.
    pub fn disconnect(&mut self) {
        self.link = Link::Offline;
    }

    /// Seals a message for `to` and returns its id and the `Transport` frame to send.
    ///
    /// # Errors
    /// [`MisuseError::NotConnected`], [`MisuseError::IdsExhausted`], or a channel error.
    pub fn send(&mut self, to: &Name, body: Body) -> Result<(MessageId, Vec<u8>), Error> {
        let id = MessageId(self.last_id.checked_add(1).ok_or(MisuseError::IdsExhausted)?);
        let Link::Online(transport) = &self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        let mut transport = transport.clone();
        let frame = seal(&mut transport, &Message::Send { id, to: to.clone(), body })?;
        self.link = Link::Online(transport);
        self.last_id = id.0;
        Ok((id, frame))
    }

    /// Handles one frame from the server.
    ///
    /// # Errors
    /// Malformed, unauthentic or unexpected input; the client is then unchanged.
    pub fn handle(&mut self, frame: &[u8]) -> Result<Vec<ClientEvent>, Error> {
        let frame = LinkFrame::decode(frame)?;
        let unexpected = |got| ProtocolError::Unexpected { state: self.link.state_name(), got };
        match (&self.link, frame.kind()) {
            (Link::Handshaking(awaiting), LinkKind::HandshakeResp) => {
                let (transport, payload) = awaiting.read_message_2(frame.noise())?;
                match Message::decode(&payload)? {
                    Message::Welcome { name } if name == self.name => {
                        self.link = Link::Online(transport);
                        Ok(vec![ClientEvent::Connected])
                    }
                    Message::Welcome { .. } => Err(ProtocolError::WrongName.into()),
                    Message::Refused { reason } => {
                        self.link = Link::Offline;
                        Ok(vec![ClientEvent::Refused(reason)])
                    }
                    other => Err(unexpected(other.type_name()).into()),
                }
            }
            (Link::Online(transport), LinkKind::Transport) => {
                let mut transport = transport.clone();
                let message = Message::decode(&transport.read(frame.noise())?)?;
                let event = match message {
                    Message::Deliver { id, from, body } => {
                        let mut window = self.accepted.get(&from).copied().unwrap_or_default();
                        match window.check(id) {
                            Ok(()) => window.record(id),
                            Err(Refusal::Replayed) => {
                                return Err(ProtocolError::Replayed { from, id }.into());
                            }
                            Err(Refusal::OutOfWindow) => {
                                return Err(ProtocolError::OutOfWindow { from, id }.into());
                            }
                        }
                        self.accepted.insert(from.clone(), window);
                        ClientEvent::Received { from, id, body }
                    }
                    Message::Ack { id, status } => ClientEvent::Acked { id, status },
                    Message::Reject { id, reason } => ClientEvent::Rejected { id, reason },
                    other => return Err(unexpected(other.type_name()).into()),
                };
                self.link = Link::Online(transport);
                Ok(vec![event])
            }
            (_, kind) => Err(unexpected(kind.name()).into()),
        }
    }
}

/// Encodes `message`, seals it in `transport` and frames the ciphertext.
pub(crate) fn seal(transport: &mut Transport, message: &Message) -> Result<Vec<u8>, Error> {
    let ciphertext = transport.write(&message.encode())?;
    Ok(LinkFrame::transport(ciphertext)?.encode())
}
