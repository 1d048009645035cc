//! The in-process runner: Alice, the Server and Bob in one process, driven from a seed.
//!
//! Frames are delivered in the order they are produced (first in, first out); each delivery is one
//! transcript [`Event`]. The runner never decodes a frame to see inside it: what a party "reads" is
//! what that party's own state machine reported, so the transcript shows exactly what each role could
//! and could not open.

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::transcript::{Event, Summary, Transcript};
use crate::error::{Error, MisuseError};
use crate::hop::ContentPolicy;
use crate::roles::{Client, ClientEvent, LinkId, Server, ServerEvent};
use crate::suite::PrivateKey;
use crate::wire::{AckStatus, Body, Codec, LinkFrame, MessageId, Name};

/// A participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// The first client.
    Alice,
    /// The second client.
    Bob,
    /// The relay.
    Server,
}

impl Party {
    /// Lower-case name, as used in transcripts and as the client's registered name.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Alice => "alice",
            Self::Bob => "bob",
            Self::Server => "server",
        }
    }

    /// The other client.
    #[must_use]
    pub const fn peer(self) -> Self {
        match self {
            Self::Alice => Self::Bob,
            Self::Bob | Self::Server => Self::Alice,
        }
    }
}

/// One action of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The client opens its channel and registers.
    Connect(Party),
    /// The client's connection drops; the server forgets the link.
    Disconnect(Party),
    /// The client sends `text` to the other client.
    Send {
        /// The sending client.
        from: Party,
        /// The content.
        text: String,
    },
}

/// The default hop conversation: both connect, talk both ways, then Bob goes offline and a message
/// waits in his mailbox until he reconnects.
#[must_use]
pub fn default_hop_script() -> Vec<Step> {
    let send = |from, text: &str| Step::Send { from, text: text.to_owned() };
    vec![
        Step::Connect(Party::Alice),
        Step::Connect(Party::Bob),
        send(Party::Alice, "hi bob, lunch today?"),
        send(Party::Bob, "sure, where?"),
        send(Party::Alice, "meet at noon by the fountain"),
        Step::Disconnect(Party::Bob),
        send(Party::Alice, "running five minutes late"),
        Step::Connect(Party::Bob),
    ]
}

/// A script from `--message` arguments: both clients connect, then each text is sent in order, by
/// Alice to Bob — or by Bob to Alice when it starts with `bob:` (`alice:` is accepted too; the prefix
/// and one following space are removed).
#[must_use]
pub fn script_from_messages(messages: &[String]) -> Vec<Step> {
    let mut script = vec![Step::Connect(Party::Alice), Step::Connect(Party::Bob)];
    for m in messages {
        let (from, text) = if let Some(rest) = m.strip_prefix("bob:") {
            (Party::Bob, rest)
        } else if let Some(rest) = m.strip_prefix("alice:") {
            (Party::Alice, rest)
        } else {
            (Party::Alice, m.as_str())
        };
        let text = text.strip_prefix(' ').unwrap_or(text);
        script.push(Step::Send { from, text: text.to_owned() });
    }
    script
}

/// Runs the hop protocol over `script`, with keys and ephemerals drawn from `seed`.
///
/// Keys are drawn in this order: server static, Alice's static, Bob's static; then one ephemeral per
/// handshake message, in the order the handshakes happen.
///
/// # Errors
/// A script step that is impossible (for example sending while offline), or a role error on a frame
/// the script itself produced — which would be a bug. A *refused* frame is not an error of the run;
/// it is recorded in the transcript.
pub fn run_hop<P: ContentPolicy>(
    seed: u64,
    script: &[Step],
    policy: P,
) -> Result<Transcript, Error> {
    let mut world = World::new(seed, policy)?;
    for step in script {
        world.step(step)?;
    }
    Ok(Transcript {
        protocol: "hop".to_owned(),
        seed,
        events: world.events,
        summary: world.summary,
    })
}

struct World<P: ContentPolicy> {
    rng: ChaCha20Rng,
    server: Server<P>,
    alice: Client,
    bob: Client,
    links: BTreeMap<Party, LinkId>,
    next_link: u64,
    in_flight: VecDeque<(Party, Party, Vec<u8>)>,
    texts: BTreeMap<(Party, MessageId), String>,
    note: Option<String>,
    events: Vec<Event>,
    summary: Summary,
}

impl<P: ContentPolicy> World<P> {
    fn new(seed: u64, policy: P) -> Result<Self, Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let server = Server::with_policy(PrivateKey::generate(&mut rng), policy);
        let alice_key = PrivateKey::generate(&mut rng);
        let bob_key = PrivateKey::generate(&mut rng);
        let name = |p: Party| Name::new(p.label());
        Ok(Self {
            alice: Client::new(name(Party::Alice)?, alice_key, server.public_key()),
            bob: Client::new(name(Party::Bob)?, bob_key, server.public_key()),
            server,
            rng,
            links: BTreeMap::new(),
            next_link: 1,
            in_flight: VecDeque::new(),
            texts: BTreeMap::new(),
            note: None,
            events: Vec::new(),
            summary: Summary::default(),
        })
    }

    fn client(&mut self, party: Party) -> Result<&mut Client, Error> {
        match party {
            Party::Alice => Ok(&mut self.alice),
            Party::Bob => Ok(&mut self.bob),
            Party::Server => Err(MisuseError::NotConnected.into()),
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), Error> {
        match step {
            Step::Connect(party) => {
                let mut rng = self.rng.clone();
                let frame = self.client(*party)?.connect(&mut rng)?;
                self.rng = rng;
                self.links.insert(*party, LinkId(self.next_link));
                self.next_link += 1;
                self.add_note(format!("{} connects", party.label()));
                self.in_flight.push_back((*party, Party::Server, frame));
            }
            Step::Disconnect(party) => {
                self.client(*party)?.disconnect();
                if let Some(link) = self.links.remove(party) {
                    self.server.close_link(link);
                }
                self.add_note(format!("{} goes offline", party.label()));
                return Ok(());
            }
            Step::Send { from, text } => {
                let body = Body::new(text.as_bytes().to_vec())?;
                let to = Name::new(from.peer().label())?;
                let (id, frame) = self.client(*from)?.send(&to, body)?;
                self.texts.insert((*from, id), text.clone());
                self.add_note(format!("{} sends {text:?} to {to}", from.label()));
                self.in_flight.push_back((*from, Party::Server, frame));
            }
        }
        self.pump()
    }

    /// Notes accumulate until the next frame, which carries them.
    fn add_note(&mut self, line: String) {
        self.note = Some(match self.note.take() {
            Some(earlier) => format!("{earlier}; {line}"),
            None => line,
        });
    }

    /// Delivers every frame in flight, and every frame that produces, in order.
    fn pump(&mut self) -> Result<(), Error> {
        while let Some((from, to, frame)) = self.in_flight.pop_front() {
            let frame_type = LinkFrame::decode(&frame).map_or("malformed", |f| f.type_name());
            let mut event = Event {
                step: self.events.len() + 1,
                from: from.label().to_owned(),
                to: to.label().to_owned(),
                frame_type: frame_type.to_owned(),
                frame_hex: hex::encode(&frame),
                read: None,
                error: None,
                note: self.note.take(),
            };
            let outcome = if to == Party::Server {
                self.deliver_to_server(from, &frame)
            } else {
                self.deliver_to_client(to, &frame)
            };
            match outcome {
                Ok(read) => event.read = Some(read),
                Err(e) => event.error = Some(e.to_string()),
            }
            self.events.push(event);
        }
        Ok(())
    }

    fn deliver_to_server(&mut self, from: Party, frame: &[u8]) -> Result<String, Error> {
        let link = *self.links.get(&from).ok_or(MisuseError::UnknownLink)?;
        let out = self.server.handle(link, frame, &mut self.rng)?;
        for (link, frame) in out.transmit {
            if let Some((&party, _)) = self.links.iter().find(|(_, l)| **l == link) {
                self.in_flight.push_back((Party::Server, party, frame));
            }
        }
        for link in out.close {
            self.links.retain(|_, l| *l != link);
        }
        let mut reads = Vec::new();
        for event in out.events {
            reads.push(match event {
                ServerEvent::Registered { name, .. } => {
                    format!("Register {name}: name bound to the channel's static key")
                }
                ServerEvent::Refused { reason, .. } => {
                    format!("a registration it refuses ({reason:?})")
                }
                ServerEvent::Read { from, to, id, body } => {
                    self.summary
                        .server_read
                        .push(String::from_utf8_lossy(body.as_bytes()).into_owned());
                    format!("Send {id} from {from} to {to}: {body:?}")
                }
                ServerEvent::Accepted { to, status: AckStatus::Relayed, .. } => {
                    format!("-> re-seals it for {to}")
                }
                ServerEvent::Accepted { to, status: AckStatus::Queued, .. } => {
                    format!("-> {to} is offline: queued in {to}'s mailbox")
                }
                ServerEvent::Rejected { from, id, reason } => {
                    let party = if from.as_str() == Party::Alice.label() {
                        Party::Alice
                    } else {
                        Party::Bob
                    };
                    let text = self.texts.get(&(party, id)).cloned().unwrap_or_default();
                    self.summary.rejected.push(format!("{text}: {reason:?}"));
                    format!("-> refuses it ({reason:?})")
                }
            });
        }
        Ok(reads.join(" "))
    }

    fn deliver_to_client(&mut self, to: Party, frame: &[u8]) -> Result<String, Error> {
        let events = self.client(to)?.handle(frame)?;
        let mut reads = Vec::new();
        for event in events {
            reads.push(match event {
                ClientEvent::Connected => "Welcome: channel open".to_owned(),
                ClientEvent::Refused(reason) => format!("Refused ({reason:?})"),
                ClientEvent::Received { from, id, body } => {
                    self.summary
                        .delivered
                        .push(String::from_utf8_lossy(body.as_bytes()).into_owned());
                    format!("Deliver {id} from {from}: {body:?}")
                }
                ClientEvent::Acked { id, status } => format!("Ack {id} ({status:?})"),
                ClientEvent::Rejected { id, reason } => format!("Reject {id} ({reason:?})"),
            });
        }
        Ok(reads.join(" "))
    }
}
