//! What a client tells its user, in the two forms `e2e-ref` writes it: a line of text for a person
//! (`e2e-ref client`) and a JSON object for a program (`e2e-ref client --json`, and the interop shim,
//! spec/INTEROP.md §3). One function per form, so the terminal client and the shim never disagree
//! on an event's fields.

use e2e_protocol::Error;
use e2e_protocol::roles::{ClientEvent, Protection};
use serde_json::{Value, json};

/// The SPEC.md §7.1 class of `error`: `Wire`, `Channel`, `Protocol`, `E2e` or `Misuse` (the
/// `error` field of spec/INTEROP.md's `dropped` event and of a refused shim command).
#[must_use]
pub const fn class(error: &Error) -> &'static str {
    match error {
        Error::Wire(_) => "Wire",
        Error::Channel(_) => "Channel",
        Error::Protocol(_) => "Protocol",
        Error::E2e(_) => "E2e",
        Error::Misuse(_) => "Misuse",
        #[allow(unreachable_patterns)]
        _ => "Other",
    }
}

const fn protection(protection: &Protection) -> &'static str {
    match protection {
        Protection::Hop => "hop",
        Protection::E2e { .. } => "e2e",
    }
}

/// The JSON object for `event` (spec/INTEROP.md §3).
#[must_use]
pub fn json(event: &ClientEvent) -> Value {
    match event {
        ClientEvent::Connected => json!({"event": "connected"}),
        ClientEvent::Refused(reason) => {
            json!({"event": "refused", "reason": format!("{reason:?}")})
        }
        ClientEvent::Received { from, id, body, protection: how } => json!({
            "event": "received",
            "from": from.as_str(),
            "id": id.0,
            "text": String::from_utf8_lossy(body.as_bytes()),
            "protection": protection(how),
        }),
        ClientEvent::Sent { to, id } => json!({"event": "sent", "to": to.as_str(), "id": id.0}),
        ClientEvent::Acked { id, status } => {
            json!({"event": "acked", "id": id.0, "status": format!("{status:?}")})
        }
        ClientEvent::Rejected { id, reason } => {
            json!({"event": "rejected", "id": id.0, "reason": format!("{reason:?}")})
        }
        ClientEvent::BundleStored { one_time_prekeys } => {
            json!({"event": "bundle_stored", "one_time_prekeys": one_time_prekeys})
        }
        ClientEvent::BundleRefused(why) => {
            json!({"event": "bundle_refused", "detail": format!("{why:?}")})
        }
        ClientEvent::SessionStarted { peer, one_time_prekey } => json!({
            "event": "session_started", "peer": peer.as_str(), "one_time_prekey": one_time_prekey,
        }),
        ClientEvent::IdentityChanged { peer, .. } => {
            json!({"event": "identity_changed", "peer": peer.as_str()})
        }
        ClientEvent::PeerEvicted { peer } => {
            json!({"event": "peer_evicted", "peer": peer.as_str()})
        }
        ClientEvent::PrekeysReplenished { made } => {
            json!({"event": "prekeys_replenished", "made": made})
        }
        ClientEvent::SendFailed { peer, error, discarded } => json!({
            "event": "send_failed", "peer": peer.as_str(), "error": "E2e",
            "detail": format!("{error:?}"), "discarded": discarded,
        }),
        ClientEvent::Dropped { error } => {
            json!({"event": "dropped", "error": class(error), "detail": format!("{error:?}")})
        }
        other => json!({"event": "other", "detail": format!("{other:?}")}),
    }
}

/// A line of text for a person reading `event` in a terminal.
#[must_use]
pub fn text(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Connected => "connected".to_owned(),
        ClientEvent::Refused(reason) => format!("the server refused the registration: {reason:?}"),
        ClientEvent::Received { from, body, protection: how, .. } => {
            format!("{from} ({}): {}", protection(how), String::from_utf8_lossy(body.as_bytes()))
        }
        ClientEvent::Sent { to, id } => format!("message {} to {to} sent", id.0),
        ClientEvent::Acked { id, status } => format!("message {} {status:?}", id.0),
        ClientEvent::Rejected { id, reason } => format!("message {} rejected: {reason:?}", id.0),
        ClientEvent::BundleStored { one_time_prekeys } => {
            format!("bundle stored ({one_time_prekeys} one-time prekeys on the server)")
        }
        ClientEvent::BundleRefused(why) => format!("bundle refused: {why:?}"),
        ClientEvent::SessionStarted { peer, one_time_prekey } => format!(
            "session with {peer} started ({}); compare safety numbers with `safety-number {peer}`",
            if *one_time_prekey { "with a one-time prekey" } else { "without a one-time prekey" }
        ),
        ClientEvent::IdentityChanged { peer, old, new } => format!(
            "WARNING: {peer} has a new identity; its sessions were deleted. Safety number was {old}, \
             is now {new}: compare it again"
        ),
        ClientEvent::PeerEvicted { peer } => {
            format!("the sessions with {peer} were deleted to make room for a new peer")
        }
        ClientEvent::PrekeysReplenished { made } => {
            format!("{made} new one-time prekeys made and uploaded")
        }
        ClientEvent::SendFailed { peer, error, discarded } => {
            format!("{discarded} message(s) to {peer} discarded unsent: {error}")
        }
        ClientEvent::Dropped { error } => format!("a frame was refused: {error}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use e2e_protocol::e2e::E2eError;
    use e2e_protocol::wire::{MessageId, Name};

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    /// The events the terminal client once printed only as `{"event":"other"}` have their own
    /// names and fields now, in both forms.
    #[test]
    fn every_named_event_has_its_fields() {
        let cases = [
            (
                ClientEvent::SessionStarted { peer: name("bob"), one_time_prekey: true },
                json!({"event": "session_started", "peer": "bob", "one_time_prekey": true}),
            ),
            (
                ClientEvent::SendFailed {
                    peer: name("bob"),
                    error: E2eError::NoBundle { name: name("bob") },
                    discarded: 2,
                },
                json!({"event": "send_failed", "peer": "bob", "error": "E2e",
                       "detail": format!("{:?}", E2eError::NoBundle { name: name("bob") }),
                       "discarded": 2}),
            ),
            (
                ClientEvent::PeerEvicted { peer: name("carol") },
                json!({"event": "peer_evicted", "peer": "carol"}),
            ),
            (
                ClientEvent::PrekeysReplenished { made: 50 },
                json!({"event": "prekeys_replenished", "made": 50}),
            ),
            (
                ClientEvent::Sent { to: name("bob"), id: MessageId(7) },
                json!({"event": "sent", "to": "bob", "id": 7}),
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(json(&event), expected);
            let line = text(&event);
            assert!(!line.contains('{') && !line.is_empty(), "{line}");
        }
        assert!(text(&ClientEvent::PeerEvicted { peer: name("carol") }).contains("carol"));
    }
}
