//! A malicious server that substitutes prekey bundles: the man in the middle that safety numbers
//! exist to catch (SPEC.md §14, §16).
//!
//! It is the honest [`Server`] plus one thing the real operator of a server can always do: look at
//! each plaintext its channels deliver and rewrite it before processing it. It holds two e2e
//! identities of its own. When Alice asks for Bob's bundle it hands her one made from its
//! "Bob" identity; when Bob asks for Alice's, its "Alice" identity. Each of Alice's envelopes then
//! opens under the server's own session with her; the server reads the content, re-encrypts it in its
//! own session with the real Bob (started from Bob's real bundle), and lets the honest relay code
//! deliver it. Every step uses the protocol crate's own state machines — the attack needs no special
//! code, only keys the server is in a position to substitute.

use rand_core::CryptoRng;

use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::error::Error;
use e2e_protocol::hop::ContentPolicy;
use e2e_protocol::roles::{LinkId, Server};
use e2e_protocol::wire::{
    Codec, FetchedBundle, IdentityPublic, Message, Name, OneTimePrekeyPublic, UploadedBundle,
};

/// What the man in the middle did with one plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intercepted {
    /// Not its business: process the plaintext honestly.
    PassThrough,
    /// Process this rewritten plaintext honestly instead.
    Rewritten {
        /// The new plaintext.
        plaintext: Vec<u8>,
        /// What the server read on the way.
        read: String,
        /// The message content it decrypted.
        content: Vec<u8>,
    },
    /// Answer with this message on the sender's link and do nothing else.
    Reply {
        /// The answer.
        message: Message,
        /// What the server did.
        note: String,
    },
}

/// One forged identity, as offered to the victims who believe it is `impersonates`.
#[derive(Debug, Clone)]
struct Impostor {
    impersonates: Name,
    peers: Peers,
    bundle: UploadedBundle,
    handed_out: usize,
}

impl Impostor {
    fn fetched_bundle(&mut self) -> FetchedBundle {
        let one_time_prekey: Option<OneTimePrekeyPublic> =
            self.bundle.one_time_prekeys().get(self.handed_out).copied();
        if one_time_prekey.is_some() {
            self.handed_out += 1;
        }
        FetchedBundle {
            identity: *self.bundle.identity(),
            signed_prekey: *self.bundle.signed_prekey(),
            one_time_prekey,
        }
    }
}

/// The bundle-substituting man in the middle between two clients.
#[derive(Debug, Clone)]
pub struct Mitm {
    impostors: Vec<Impostor>,
}

impl Mitm {
    /// Forged identities for `a` and `b`, drawn from `rng`.
    ///
    /// # Errors
    /// Only if a forged bundle could not be prepared (ruled out by the prekey store's bounds).
    pub fn new<R: CryptoRng + ?Sized>(a: &Name, b: &Name, rng: &mut R) -> Result<Self, E2eError> {
        let mut impostors = Vec::new();
        for name in [a, b] {
            let mut peers = Peers::generate(rng);
            let bundle = peers.prepare_upload()?;
            impostors.push(Impostor { impersonates: name.clone(), peers, bundle, handed_out: 0 });
        }
        Ok(Self { impostors })
    }

    /// The identity the server offers in place of `name`'s.
    #[must_use]
    pub fn forged_identity(&self, name: &Name) -> Option<IdentityPublic> {
        self.impostors.iter().find(|i| &i.impersonates == name).map(|i| i.peers.identity())
    }

    fn impostor(&mut self, name: &Name) -> Option<&mut Impostor> {
        self.impostors.iter_mut().find(|i| &i.impersonates == name)
    }

    /// Decides what to do with a plaintext `from` sent, which the server has just opened.
    ///
    /// # Errors
    /// Only from the server's own sessions with the real recipient (which the protocol's state
    /// machines keep consistent); a victim's envelope that does not open under the forged session is
    /// passed through untouched.
    pub fn intercept<P: ContentPolicy, R: CryptoRng + ?Sized>(
        &mut self,
        server: &mut Server<P>,
        from: &Name,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Intercepted, Error> {
        let Ok(message) = Message::decode(plaintext) else {
            return Ok(Intercepted::PassThrough);
        };
        match message {
            Message::FetchBundle { name } if name != *from => {
                let Some(impostor) = self.impostor(&name) else {
                    return Ok(Intercepted::PassThrough);
                };
                let bundle = impostor.fetched_bundle();
                let note = format!("hands {from} a bundle of its own keys as {name}'s");
                Ok(Intercepted::Reply { message: Message::Bundle { name, bundle }, note })
            }
            Message::E2eSend { id, to, envelope } => {
                // The victim `from` believes it talks to `to`; it talks to the impostor of `to`.
                let Some(facing_sender) = self.impostor(&to) else {
                    return Ok(Intercepted::PassThrough);
                };
                let mut facing_sender_peers = facing_sender.peers.clone();
                let Ok(decrypted) = facing_sender_peers.decrypt(&to, from, &envelope) else {
                    return Ok(Intercepted::PassThrough);
                };
                facing_sender.peers = facing_sender_peers;
                // Re-encrypt for the real `to`, posing as `from`.
                let Some(facing_recipient) = self.impostor(from) else {
                    return Ok(Intercepted::PassThrough);
                };
                let mut peers = facing_recipient.peers.clone();
                if !peers.has_session(&to) {
                    let Some(bundle) = server.take_bundle(&to) else {
                        return Ok(Intercepted::PassThrough);
                    };
                    peers.start_session(from, &to, &bundle, rng)?;
                }
                let forwarded = peers.encrypt(&to, &decrypted.body, rng)?;
                facing_recipient.peers = peers;
                let content = decrypted.body.as_bytes().to_vec();
                let read = format!(
                    "decrypts {}'s envelope with its forged {to} session: {:?}; re-encrypts it for {to} as {}",
                    from, decrypted.body, from
                );
                let plaintext = Message::E2eSend { id, to, envelope: forwarded }.encode();
                Ok(Intercepted::Rewritten { plaintext, read, content })
            }
            _ => Ok(Intercepted::PassThrough),
        }
    }

    /// Answers on `link` with `message`, sealed in that link's channel.
    ///
    /// # Errors
    /// A channel error from sealing.
    pub fn reply<P: ContentPolicy>(
        server: &mut Server<P>,
        link: LinkId,
        message: &Message,
    ) -> Result<Vec<u8>, Error> {
        server.seal_transport(link, message)
    }
}
