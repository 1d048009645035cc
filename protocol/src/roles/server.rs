//! The server role: a sans-IO state machine that terminates every client's channel.
//!
//! The driver numbers each connection with a [`LinkId`] and passes in `(link, frame)`; the server
//! returns frames to send on links, links to close, and events describing what it did and read.
//!
//! Every call is transactional: on error the server is exactly as it was (`==` to a clone taken
//! before the call); the driver may then close the link.

use std::collections::BTreeMap;

use rand_core::CryptoRng;

use super::client::seal;
use super::mailbox::Mailbox;
use crate::channel::{PROLOGUE, Responder, Transport};
use crate::error::{Error, ProtocolError};
use crate::hop::{AllowAll, ContentPolicy, Verdict};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{
    AckStatus, Body, Codec, LinkFrame, LinkKind, Message, MessageId, Name, RefusalReason,
    RejectReason,
};

/// The driver's number for one client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// What the server did, for the driver's log and the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `name` registered on `link` (and its queued messages, if any, were sent).
    Registered {
        /// The link.
        link: LinkId,
        /// The name, now bound to the client's static key.
        name: Name,
    },
    /// A registration on `link` was refused; the link is closed.
    Refused {
        /// The link.
        link: LinkId,
        /// Why.
        reason: RefusalReason,
    },
    /// The server opened a message and read its content. In hop this is every message.
    Read {
        /// Sender.
        from: Name,
        /// Recipient.
        to: Name,
        /// Sender's id.
        id: MessageId,
        /// The plaintext the server saw.
        body: Body,
    },
    /// Message `id` from `from` went to `to`'s open channel, or into its mailbox.
    Accepted {
        /// Sender.
        from: Name,
        /// Recipient.
        to: Name,
        /// Sender's id.
        id: MessageId,
        /// Relayed or queued.
        status: AckStatus,
    },
    /// Message `id` from `from` was refused.
    Rejected {
        /// Sender.
        from: Name,
        /// Sender's id.
        id: MessageId,
        /// Why.
        reason: RejectReason,
    },
}

/// What one call produced: frames to send (in order), links to close (after sending), events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOutputs {
    /// Frames to send, in order, each on its link.
    pub transmit: Vec<(LinkId, Vec<u8>)>,
    /// Links to close once their frames are sent.
    pub close: Vec<LinkId>,
    /// What happened.
    pub events: Vec<ServerEvent>,
}

/// An open channel with a registered client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OpenLink {
    name: Name,
    transport: Transport,
}

/// The relay server, generic over its hop [`ContentPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server<P: ContentPolicy = AllowAll> {
    static_key: PrivateKey,
    policy: P,
    links: BTreeMap<LinkId, OpenLink>,
    accounts: BTreeMap<Name, PublicKey>,
    mailboxes: BTreeMap<Name, Mailbox>,
}

impl Server<AllowAll> {
    /// A server with the default policy (relay everything).
    #[must_use]
    pub const fn new(static_key: PrivateKey) -> Self {
        Self::with_policy(static_key, AllowAll)
    }
}

impl<P: ContentPolicy> Server<P> {
    /// A server that applies `policy` to every hop plaintext.
    #[must_use]
    pub const fn with_policy(static_key: PrivateKey, policy: P) -> Self {
        Self {
            static_key,
            policy,
            links: BTreeMap::new(),
            accounts: BTreeMap::new(),
            mailboxes: BTreeMap::new(),
        }
    }

    /// The static public key clients must know in advance.
    #[must_use]
    pub const fn public_key(&self) -> PublicKey {
        self.static_key.public_key()
    }

    /// The static key bound to `name`, if it ever registered.
    #[must_use]
    pub fn account(&self, name: &Name) -> Option<PublicKey> {
        self.accounts.get(name).copied()
    }

    /// Whether `name` has an open channel.
    #[must_use]
    pub fn is_online(&self, name: &Name) -> bool {
        self.link_of(name).is_some()
    }

    /// How many messages wait for `name`.
    #[must_use]
    pub fn queued(&self, name: &Name) -> usize {
        self.mailboxes.get(name).map_or(0, Mailbox::len)
    }

    /// Forgets `link` (the connection is gone). Messages for its client queue from now on.
    pub fn close_link(&mut self, link: LinkId) {
        self.links.remove(&link);
    }

    fn link_of(&self, name: &Name) -> Option<LinkId> {
        self.links.iter().find(|(_, open)| &open.name == name).map(|(id, _)| *id)
    }

    /// Handles one frame received on `link`.
    ///
    /// # Errors
    /// Malformed, unauthentic or unexpected input; the server is then unchanged.
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        link: LinkId,
        frame: &[u8],
        rng: &mut R,
    ) -> Result<ServerOutputs, Error> {
        let frame = LinkFrame::decode(frame)?;
        let state = if self.links.contains_key(&link) { "open" } else { "no channel" };
        match (frame.kind(), self.links.get(&link)) {
            (LinkKind::HandshakeInit, None) => self.accept(link, frame.noise(), rng),
            (LinkKind::Transport, Some(open)) => {
                let mut transport = open.transport.clone();
                let message = Message::decode(&transport.read(frame.noise())?)?;
                match message {
                    Message::Send { id, to, body } => {
                        let from = open.name.clone();
                        self.relay(link, transport, from, id, to, body)
                    }
                    other => {
                        Err(ProtocolError::Unexpected { state, got: other.type_name() }.into())
                    }
                }
            }
            (kind, _) => Err(ProtocolError::Unexpected { state, got: kind.name() }.into()),
        }
    }

    /// Responds to handshake message 1 on a fresh link: register, or refuse.
    fn accept<R: CryptoRng + ?Sized>(
        &mut self,
        link: LinkId,
        noise: &[u8],
        rng: &mut R,
    ) -> Result<ServerOutputs, Error> {
        let received = Responder::new(PROLOGUE, self.static_key.clone()).read_message_1(noise)?;
        let client_key = received.remote_static();
        let refusal = match Message::decode(received.payload())? {
            Message::Register { name } => match self.accounts.get(&name) {
                Some(bound) if *bound != client_key => Err(RefusalReason::NameTaken),
                _ => Ok(name),
            },
            _ => Err(RefusalReason::NotARegistration),
        };
        let mut out = ServerOutputs::default();
        let name = match refusal {
            Ok(name) => name,
            Err(reason) => {
                let reply = Message::Refused { reason }.encode();
                let (_, noise) = received.write_message_2(PrivateKey::generate(rng), &reply)?;
                out.transmit.push((link, LinkFrame::handshake_resp(noise)?.encode()));
                out.close.push(link);
                out.events.push(ServerEvent::Refused { link, reason });
                return Ok(out);
            }
        };
        let reply = Message::Welcome { name: name.clone() }.encode();
        let (mut transport, noise) = received.write_message_2(PrivateKey::generate(rng), &reply)?;
        out.transmit.push((link, LinkFrame::handshake_resp(noise)?.encode()));
        let mut waiting = self.mailboxes.get(&name).cloned().unwrap_or_default();
        for message in waiting.drain() {
            out.transmit.push((link, seal(&mut transport, &message)?));
        }
        // Everything fallible is done: commit.
        if let Some(old) = self.link_of(&name) {
            self.links.remove(&old);
            out.close.push(old);
        }
        self.mailboxes.remove(&name);
        self.accounts.insert(name.clone(), client_key);
        self.links.insert(link, OpenLink { name: name.clone(), transport });
        out.events.push(ServerEvent::Registered { link, name });
        Ok(out)
    }

    /// Opens, checks and re-seals a hop message. `sender` is the sender's transport after reading
    /// the `Send`; every channel is advanced on a copy, and nothing is committed until every frame
    /// is sealed.
    fn relay(
        &mut self,
        link: LinkId,
        mut sender: Transport,
        from: Name,
        id: MessageId,
        to: Name,
        body: Body,
    ) -> Result<ServerOutputs, Error> {
        let mut out = ServerOutputs::default();
        let refusal = if !self.accounts.contains_key(&to) {
            Some(RejectReason::UnknownRecipient)
        } else if self.policy.check(&from, &to, body.as_bytes()) == Verdict::Deny {
            Some(RejectReason::Policy)
        } else {
            None
        };
        out.events.push(ServerEvent::Read {
            from: from.clone(),
            to: to.clone(),
            id,
            body: body.clone(),
        });
        let deliver = Message::Deliver { id, from: from.clone(), body };
        let outcome = match (refusal, self.links.iter().find(|(_, open)| open.name == to)) {
            (Some(reason), _) => Outcome::Rejected(reason),
            (None, Some((&to_link, open))) => {
                let mut transport = open.transport.clone();
                out.transmit.push((to_link, seal(&mut transport, &deliver)?));
                Outcome::Relayed(to_link, transport)
            }
            (None, None) => {
                let mut mailbox = self.mailboxes.get(&to).cloned().unwrap_or_default();
                match mailbox.push(deliver) {
                    Ok(()) => Outcome::Queued(mailbox),
                    Err(_) => Outcome::Rejected(RejectReason::MailboxFull),
                }
            }
        };
        let (reply, event) = match &outcome {
            Outcome::Rejected(reason) => (
                Message::Reject { id, reason: *reason },
                ServerEvent::Rejected { from, id, reason: *reason },
            ),
            Outcome::Relayed(..) | Outcome::Queued(_) => {
                let status = if matches!(outcome, Outcome::Queued(_)) {
                    AckStatus::Queued
                } else {
                    AckStatus::Relayed
                };
                (
                    Message::Ack { id, status },
                    ServerEvent::Accepted { from, to: to.clone(), id, status },
                )
            }
        };
        out.transmit.push((link, seal(&mut sender, &reply)?));
        out.events.push(event);
        // Everything fallible is done: commit.
        if let Some(open) = self.links.get_mut(&link) {
            open.transport = sender;
        }
        match outcome {
            Outcome::Relayed(to_link, transport) => {
                if let Some(open) = self.links.get_mut(&to_link) {
                    open.transport = transport;
                }
            }
            Outcome::Queued(mailbox) => {
                self.mailboxes.insert(to, mailbox);
            }
            Outcome::Rejected(_) => {}
        }
        Ok(out)
    }
}

/// Where a relayed message went, with the state to commit.
enum Outcome {
    Relayed(LinkId, Transport),
    Queued(Mailbox),
    Rejected(RejectReason),
}
