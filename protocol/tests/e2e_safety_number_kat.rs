//! Known-answer test for safety numbers (SPEC.md §14.1), against digits computed independently of
//! this crate, with Python's `hashlib`, from the SPEC text alone.
//!
//! The identities are fixed public test vectors, used only as 64 opaque bytes (a fingerprint
//! validates nothing): `IK_A` = RFC 7748 §6.1 Alice's X25519 public key || RFC 8032 §7.1 TEST 1's
//! Ed25519 public key, named `alice`; `IK_B` = RFC 7748 §6.1 Bob's || RFC 8032 TEST 2's, named `bob`.
//! Bob's fingerprint is the smaller, so the order of the safety number differs from the argument
//! order — the case a wrong sort would get wrong.
//!
//! The expected values are the output of this program (Python 3, standard library only):
//!
//! ```python
//! import hashlib
//! def fp(ik, name):
//!     h = hashlib.sha512(b"\x00\x00" + ik + name).digest()
//!     for _ in range(5200):
//!         h = hashlib.sha512(h + ik).digest()
//!     return "".join("%05d" % (int.from_bytes(h[i:i+5], "big") % 100000) for i in range(0, 30, 5))
//! ik_a = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
//!                      "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
//! ik_b = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
//!                      "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
//! fa, fb = fp(ik_a, b"alice"), fp(ik_b, b"bob")
//! print(fa); print(fb); print("".join(sorted([fa, fb])))
//! ```

#![cfg(test)]

mod common;

use common::unhex_n;
use e2e_protocol::e2e::safety_number::{SafetyNumber, fingerprint};
use e2e_protocol::suite::{PublicKey, VerifyingKey};
use e2e_protocol::wire::{IdentityPublic, Name};
use serde_json::json;

const IK_A_DH: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const IK_A_SIG: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const IK_B_DH: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const IK_B_SIG: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

const FINGERPRINT_ALICE: &str = "596671440348983630061716226860";
const FINGERPRINT_BOB: &str = "573315119421574976239376865430";
const SAFETY_NUMBER: &str = "573315119421574976239376865430596671440348983630061716226860";
const SAFETY_NUMBER_SHOWN: &str =
    "57331 51194 21574 97623 93768 65430 59667 14403 48983 63006 17162 26860";

fn identity(dh: &str, sig: &str) -> IdentityPublic {
    IdentityPublic {
        dh: PublicKey::from_bytes(unhex_n(&json!(dh))),
        sign: VerifyingKey::from_bytes(unhex_n(&json!(sig))),
    }
}

#[test]
fn safety_number_known_answer() {
    let alice = (identity(IK_A_DH, IK_A_SIG), Name::new("alice").unwrap());
    let bob = (identity(IK_B_DH, IK_B_SIG), Name::new("bob").unwrap());

    assert_eq!(fingerprint(&alice.0, &alice.1), FINGERPRINT_ALICE);
    assert_eq!(fingerprint(&bob.0, &bob.1), FINGERPRINT_BOB);

    let ab = SafetyNumber::new((&alice.0, &alice.1), (&bob.0, &bob.1));
    let ba = SafetyNumber::new((&bob.0, &bob.1), (&alice.0, &alice.1));
    assert_eq!(ab.digits(), SAFETY_NUMBER);
    assert_eq!(ba.digits(), SAFETY_NUMBER);
    assert_eq!(ab.to_string(), SAFETY_NUMBER_SHOWN);
}
