#!/usr/bin/env python3
"""Independent verifier of spec/vectors/, written from spec/SPEC.md alone (not from the Rust code).

Re-derives and checks key_schedule.json, wire.json, channel.json, bundles.json, e2e_transcript.json and
hop_transcript.json with Python 3.11 and the `cryptography` package (X25519, ChaCha20-Poly1305) plus the
standard library (SHA-256/512, HMAC, HKDF written out from RFC 5869). Ed25519 strict verification
(SPEC.md §10.3) is written out here: canonical y < p, decoding per RFC 8032 §5.1.3, small-order checks
([8]P = identity), canonical S < l, and the cofactorless equation compared as encodings; the
`cryptography` verifier is consulted as well and must agree wherever it is stricter or equal. The same
strict checks validate the identity a prekey message claims (§11.2: IK_A and its id_sig). Transcript
clients keep per peer the sessions of §11.3 (current, archived, retired base keys, one identity) and
spend at most the work budget of §12.5 per envelope; only hop `Deliver` has a replay window (§5.3).
The server's answers are checked against its bounds (§5.1 MAX_ACCOUNTS, §5.4 MAX_QUEUED_BYTES, or a
run's smaller `server_limits`, §17.2).

Usage: python3 spec/verify/verify.py [DIR]   (default: spec/vectors next to this file)
Prints per-file counts and exits non-zero on any failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization


class Refused(Exception):
    """A protocol refusal with its SPEC.md §7.1 class, e.g. `Wire.Truncated`."""

    def __init__(self, cls: str):
        super().__init__(cls)
        self.cls = cls


class Mismatch(Exception):
    pass


def check(what, expected, got):
    if expected != got:
        raise Mismatch(f"{what}: file has {str(expected)[:120]}, derived {str(got)[:120]}")


H = bytes.fromhex

# ---------------------------------------------------------------------------------------------
# §2 Suite
# ---------------------------------------------------------------------------------------------


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def sha512(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).digest()


def hmac256(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-SHA-256, extract then expand (SPEC.md §2)."""
    prk = hmac256(salt if salt else bytes(32), ikm)
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac256(prk, t, info, bytes([i]))
        out += t
        i += 1
    return out[:length]


def x25519_public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def dh(private: bytes, public: bytes, cls: str) -> bytes:
    """X25519 with the contributory check of SPEC.md §2.1; `cls` is the class to report."""
    try:
        out = X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # OpenSSL refuses an all-zero result itself
        raise Refused(cls)
    if out == bytes(32):
        raise Refused(cls)
    return out


def is_low_order_x25519(public: bytes) -> bool:
    """SPEC.md §10.3 step 2: X25519(k, P) = 0 for a clamped k (any clamped k gives the same answer)."""
    try:
        dh(bytes([1] * 32), public, "x")
        return False
    except Refused:
        return True


def aead_seal(key: bytes, nonce: bytes, ad: bytes, pt: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(nonce, pt, ad)


def aead_open(key: bytes, nonce: bytes, ad: bytes, ct: bytes, cls: str) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ct, ad)
    except (InvalidTag, ValueError):
        raise Refused(cls)


def channel_nonce(n: int) -> bytes:
    """SPEC.md §2.2: four zero bytes, then LE64(n)."""
    return bytes(4) + n.to_bytes(8, "little")


# --- Ed25519, strict (SPEC.md §10.3 steps 1 and 3), from RFC 8032 ---------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def ed_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = t1 * 2 * D * t2 % P
    dd = z1 * 2 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def ed_mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = ed_add(q, p)
        p = ed_add(p, p)
        s >>= 1
    return q


def ed_encode(p) -> bytes:
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed_decode(b: bytes, canonical: bool = True):
    """RFC 8032 §5.1.3; with `canonical`, y >= p is refused (SPEC.md §10.3 step 1)."""
    v = int.from_bytes(b, "little")
    sign, y = v >> 255, v & ((1 << 255) - 1)
    if y >= P:
        if canonical:
            return None
        y -= P
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        return (0, y, 1, 0)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def ed_is_identity(p) -> bool:
    x, y, z, _ = p
    return x % P == 0 and (y - z) % P == 0


def ed_small_order(p) -> bool:
    return ed_is_identity(ed_mul(8, p))


BASE = ed_decode(H("5866666666666666666666666666666666666666666666666666666666666666"))


def ed_check_key(a: bytes) -> bool:
    """Step 1: canonical, decodes, not of small order."""
    point = ed_decode(a)
    return point is not None and not ed_small_order(point)


def ed_verify_strict(a: bytes, msg: bytes, sig: bytes) -> bool:
    """Step 3: S < l, R decodes (canonically) and is not of small order, [S]B = R + [k]A, compared as
    encodings: encode([S]B - [k]A) must be exactly the R bytes received."""
    point_a = ed_decode(a)
    r_bytes, s = sig[:32], int.from_bytes(sig[32:], "little")
    if point_a is None or s >= L:
        return False
    point_r = ed_decode(r_bytes)
    if point_r is None or ed_small_order(point_r):
        return False
    k = int.from_bytes(sha512(r_bytes, a, msg), "little") % L
    neg_ka = ed_mul(L - k, point_a)
    ours = ed_encode(ed_add(ed_mul(s, BASE), neg_ka)) == r_bytes
    # The `cryptography` (OpenSSL) verifier: it may be more lenient than SPEC.md, never stricter here.
    try:
        Ed25519PublicKey.from_public_bytes(a).verify(sig, msg)
        theirs = True
    except (InvalidSignature, ValueError):
        theirs = False
    if ours and not theirs:
        raise Mismatch("strict Ed25519 accepted a signature OpenSSL refuses")
    return ours


def ed_public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def rng_stream(seed: int, length: int) -> bytes:
    """SPEC.md §9: the reference RNG. The 32-byte ChaCha20 key is eight PCG32 outputs from the seed
    (each 4 bytes little-endian); the stream is the ChaCha20 keystream (20 rounds, 64-bit block counter
    and 64-bit stream id, both starting at 0); each draw takes the next 32 bytes."""
    state, key = seed, b""
    for _ in range(8):
        state = (state * 0x5851F42D4C957F2D + 0xA17654E46FBE17F3) % 2**64
        xorshifted = (((state >> 18) ^ state) >> 27) & 0xFFFFFFFF
        rot = state >> 59
        key += (((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & 0xFFFFFFFF).to_bytes(4, "little")
    # cryptography's ChaCha20 takes the 16-byte counter||nonce block words 12..15: all zero here.
    return Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor().update(bytes(length))


# ---------------------------------------------------------------------------------------------
# §3 Wire format
# ---------------------------------------------------------------------------------------------

LINK_TYPES = {0x01: ("HandshakeInit", 96), 0x02: ("HandshakeResp", 48), 0x03: ("Transport", 16)}
MESSAGE_TYPES = {
    0x10: "Register", 0x11: "Welcome", 0x12: "Refused", 0x13: "Ready", 0x20: "Send", 0x21: "Deliver",
    0x22: "Ack", 0x23: "Reject", 0x30: "UploadBundle", 0x31: "BundleStored", 0x32: "BundleRefused",
    0x33: "FetchBundle", 0x34: "Bundle", 0x35: "NoBundle", 0x36: "E2eSend", 0x37: "E2eDeliver",
    0x38: "PrekeysLow",
}  # 0x39-0x3f are reserved (§3.3): unknown to a decoder like any other unassigned code
REFUSAL = {1: "NameTaken", 2: "NotARegistration", 3: "KeyInUse", 4: "ServerFull"}
ACK = {1: "Relayed", 2: "Queued"}
REJECT = {1: "Policy", 2: "MailboxFull", 3: "UnknownRecipient", 4: "ServerFull"}
BUNDLE_REFUSAL = {1: "BadSigningKey", 2: "LowOrderKey", 3: "BadSignature", 4: "TooManyPrekeys", 5: "DuplicatePrekeyId"}
NAME_ALPHABET = set(b"abcdefghijklmnopqrstuvwxyz0123456789-_.")
MAX_BODY_LEN = 16384
MAX_ENVELOPE_LEN = MAX_BODY_LEN + 256
MAX_ENCODED_PREKEYS = 1000


class Reader:
    def __init__(self, b: bytes):
        self.b, self.i = b, 0

    def take(self, n: int) -> bytes:
        if self.i + n > len(self.b):
            raise Refused("Wire.Truncated")
        out = self.b[self.i : self.i + n]
        self.i += n
        return out

    def int(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def rest(self) -> bytes:
        out = self.b[self.i :]
        self.i = len(self.b)
        return out

    def finish(self):
        if self.i != len(self.b):
            raise Refused("Wire.TrailingBytes")


def read_name(r: Reader) -> str:
    n = r.int(1)
    if n < 1 or n > 32:
        raise Refused("Wire.BadLength")
    b = r.take(n)
    if not set(b) <= NAME_ALPHABET:
        raise Refused("Wire.InvalidValue")
    return b.decode()


def enc_name(s: str) -> bytes:
    return bytes([len(s)]) + s.encode()


def read_enum(r: Reader, table: dict) -> str:
    v = r.int(1)
    if v not in table:
        raise Refused("Wire.InvalidValue")
    return table[v]


def read_opk(r: Reader) -> dict:
    return {"id": r.int(4), "key": r.take(32).hex()}


def read_spk(r: Reader, out: dict):
    out["spk_id"] = r.int(4)
    out["spk"] = r.take(32).hex()
    out["spk_sig"] = r.take(64).hex()


def decode_frame(b: bytes, family: str):
    """SPEC.md §3.4, checks in order; returns (type code, body bytes)."""
    maximum = 65541 if family == "link" else 6 + 65513
    if len(b) > maximum:
        raise Refused("Wire.Oversized")
    if len(b) < 1:
        raise Refused("Wire.Truncated")
    if b[0] != 0x01:
        raise Refused("Wire.UnknownVersion")
    if len(b) < 2:
        raise Refused("Wire.Truncated")
    known = LINK_TYPES if family == "link" else MESSAGE_TYPES
    if b[1] not in known:
        raise Refused("Wire.UnknownType")
    if len(b) < 6:
        raise Refused("Wire.Truncated")
    body_len = int.from_bytes(b[2:6], "big")
    if 6 + body_len > maximum:
        raise Refused("Wire.Oversized")
    if len(b) < 6 + body_len:
        raise Refused("Wire.Truncated")
    if len(b) > 6 + body_len:
        raise Refused("Wire.TrailingBytes")
    return b[1], b[6:]


def decode_link(b: bytes) -> dict:
    t, body = decode_frame(b, "link")
    name, minimum = LINK_TYPES[t]
    if len(body) < minimum:
        raise Refused("Wire.BadLength")
    return {"type": name, "noise": body.hex()}


def decode_message(b: bytes) -> dict:
    t, body = decode_frame(b, "message")
    r = Reader(body)
    name = MESSAGE_TYPES[t]
    m = {"type": name}
    if name in ("Register", "Welcome", "FetchBundle", "NoBundle"):
        m["name"] = read_name(r)
    elif name == "Refused":
        m["reason"] = read_enum(r, REFUSAL)
    elif name in ("Send", "Deliver", "E2eSend", "E2eDeliver"):
        m["id"] = r.int(8)
        m["to" if name in ("Send", "E2eSend") else "from"] = read_name(r)
        n = r.int(2)
        if name in ("Send", "Deliver"):
            if n > MAX_BODY_LEN:
                raise Refused("Wire.BadLength")
            m["body"] = r.take(n).hex()
        else:
            if n < 1 or n > MAX_ENVELOPE_LEN:
                raise Refused("Wire.BadLength")
            m["envelope"] = r.take(n).hex()
    elif name == "Ack":
        m["id"] = r.int(8)
        m["status"] = read_enum(r, ACK)
    elif name == "Reject":
        m["id"] = r.int(8)
        m["reason"] = read_enum(r, REJECT)
    elif name == "UploadBundle":
        m["IK"] = r.take(64).hex()
        read_spk(r, m)
        count = r.int(2)
        if count > MAX_ENCODED_PREKEYS:
            raise Refused("Wire.BadLength")
        m["one_time_prekeys"] = [read_opk(r) for _ in range(count)]
    elif name in ("BundleStored", "PrekeysLow"):
        m["one_time_prekeys"] = r.int(2)
    elif name == "BundleRefused":
        m["reason"] = read_enum(r, BUNDLE_REFUSAL)
    elif name == "Bundle":
        m["name"] = read_name(r)
        m["IK"] = r.take(64).hex()
        read_spk(r, m)
        flag = r.int(1)
        if flag not in (0, 1):
            raise Refused("Wire.InvalidValue")
        m["one_time_prekey"] = read_opk(r) if flag else None
    r.finish()
    return m


def encode_message(m: dict) -> bytes:
    t = {v: k for k, v in MESSAGE_TYPES.items()}[m["type"]]
    name = m["type"]
    inv = lambda table, v: bytes([{b: a for a, b in table.items()}[v]])
    b = b""
    if name in ("Register", "Welcome", "FetchBundle", "NoBundle"):
        b = enc_name(m["name"])
    elif name == "Refused":
        b = inv(REFUSAL, m["reason"])
    elif name in ("Send", "Deliver", "E2eSend", "E2eDeliver"):
        data = H(m["body"] if name in ("Send", "Deliver") else m["envelope"])
        b = m["id"].to_bytes(8, "big") + enc_name(m["to"] if "to" in m else m["from"]) + len(data).to_bytes(2, "big") + data
    elif name == "Ack":
        b = m["id"].to_bytes(8, "big") + inv(ACK, m["status"])
    elif name == "Reject":
        b = m["id"].to_bytes(8, "big") + inv(REJECT, m["reason"])
    elif name in ("UploadBundle", "Bundle"):
        b = enc_name(m["name"]) if name == "Bundle" else b""
        b += H(m["IK"]) + m["spk_id"].to_bytes(4, "big") + H(m["spk"]) + H(m["spk_sig"])
        if name == "UploadBundle":
            b += len(m["one_time_prekeys"]).to_bytes(2, "big")
            b += b"".join(o["id"].to_bytes(4, "big") + H(o["key"]) for o in m["one_time_prekeys"])
        elif m["one_time_prekey"] is None:
            b += b"\x00"
        else:
            o = m["one_time_prekey"]
            b += b"\x01" + o["id"].to_bytes(4, "big") + H(o["key"])
    elif name in ("BundleStored", "PrekeysLow"):
        b = m["one_time_prekeys"].to_bytes(2, "big")
    elif name == "BundleRefused":
        b = inv(BUNDLE_REFUSAL, m["reason"])
    return bytes([1, t]) + len(b).to_bytes(4, "big") + b


def decode_envelope(b: bytes) -> dict:
    """SPEC.md §13."""
    if len(b) > MAX_ENVELOPE_LEN:  # before anything else, as the length prefix carrying it would
        raise Refused("Wire.BadLength")
    r = Reader(b)
    kind = r.int(1)
    e = {}
    if kind == 0x01:
        e["type"] = "PrekeyMessage"
        e["IK"] = r.take(64).hex()
        e["id_sig"] = r.take(64).hex()  # §10.1, right after IK_A
        e["EK"] = r.take(32).hex()
        e["spk_id"] = r.int(4)
        flag = r.int(1)
        if flag not in (0, 1):
            raise Refused("Wire.InvalidValue")
        e["opk_id"] = r.int(4) if flag else None
    elif kind == 0x02:
        e["type"] = "RatchetMessage"
    else:
        raise Refused("Wire.InvalidValue")
    header = r.take(40)
    e["header"] = {"dh": header[:32].hex(), "pn": int.from_bytes(header[32:36], "big"), "n": int.from_bytes(header[36:], "big")}
    ct = r.rest()
    if len(ct) < 16:
        raise Refused("Wire.BadLength")
    e["ciphertext"] = ct.hex()
    return e


def encode_envelope(e: dict) -> bytes:
    h = e["header"]
    header = H(h["dh"]) + h["pn"].to_bytes(4, "big") + h["n"].to_bytes(4, "big")
    if e["type"] == "PrekeyMessage":
        b = b"\x01" + H(e["IK"]) + H(e["id_sig"]) + H(e["EK"]) + e["spk_id"].to_bytes(4, "big")
        b += b"\x00" if e["opk_id"] is None else b"\x01" + e["opk_id"].to_bytes(4, "big")
    else:
        b = b"\x02"
    return b + header + H(e["ciphertext"])


def verify_wire(case: dict):
    family, b = case["family"], H(case["hex"])
    decode = {"link": decode_link, "message": decode_message, "envelope": decode_envelope}[family]
    try:
        fields = decode(b)
    except Refused as r:
        check("result", case["result"], "invalid")
        check("error", case["error"], r.cls)
        return
    check("result", case["result"], "valid")
    check("fields", case["fields"], fields)
    if family == "message":
        check("re-encoding", case["hex"], encode_message(fields).hex())
    elif family == "envelope":
        check("re-encoding", case["hex"], encode_envelope(fields).hex())


# ---------------------------------------------------------------------------------------------
# §4 Channel: Noise_IK_25519_ChaChaPoly_SHA256
# ---------------------------------------------------------------------------------------------

PROTOCOL_NAME = b"Noise_IK_25519_ChaChaPoly_SHA256"


class Symmetric:
    def __init__(self, prologue: bytes, responder_static: bytes):
        self.h = PROTOCOL_NAME  # exactly 32 bytes: used unpadded (SPEC.md §4.1)
        self.ck = self.h
        self.k, self.n = None, 0
        self.trace = []
        self.mix_hash(prologue)
        self.mix_hash(responder_static)

    def copy(self):
        c = object.__new__(Symmetric)
        c.h, c.ck, c.k, c.n, c.trace = self.h, self.ck, self.k, self.n, list(self.trace)
        return c

    def mix_hash(self, data: bytes):
        self.h = sha256(self.h, data)
        self.trace.append(("MixHash", self.h))

    def mix_key(self, ikm: bytes):
        out = hkdf(self.ck, ikm, b"", 64)  # Noise HKDF(ck, ikm, 2) = HKDF(salt = ck, ikm, info = "", 64)
        self.ck, self.k, self.n = out[:32], out[32:], 0
        self.trace.append(("MixKey", self.ck, self.k))

    def encrypt_and_hash(self, pt: bytes) -> bytes:
        ct = aead_seal(self.k, channel_nonce(self.n), self.h, pt)
        self.n += 1
        self.mix_hash(ct)
        return ct

    def decrypt_and_hash(self, ct: bytes) -> bytes:
        pt = aead_open(self.k, channel_nonce(self.n), self.h, ct, "Channel.Crypto.AeadOpen")
        self.n += 1
        self.mix_hash(ct)
        return pt

    def split(self):
        out = hkdf(self.ck, b"", b"", 64)
        return out[:32], out[32:]


NC = "Channel.Crypto.NonContributory"


def write_message_1(sym: Symmetric, s: bytes, e: bytes, rs: bytes, payload: bytes) -> bytes:
    e_pub = x25519_public(e)
    sym.mix_hash(e_pub)
    sym.mix_key(dh(e, rs, NC))
    out = e_pub + sym.encrypt_and_hash(x25519_public(s))
    sym.mix_key(dh(s, rs, NC))
    return out + sym.encrypt_and_hash(payload)


def read_message_1(sym: Symmetric, s: bytes, m: bytes):
    if len(m) > 65535:
        raise Refused("Channel.MessageTooLong")
    if len(m) < 96:
        raise Refused("Channel.MessageTooShort")
    re = m[:32]
    sym.mix_hash(re)
    sym.mix_key(dh(s, re, NC))
    rs = sym.decrypt_and_hash(m[32:80])
    sym.mix_key(dh(s, rs, NC))
    return re, rs, sym.decrypt_and_hash(m[80:])


def write_message_2(sym: Symmetric, e: bytes, re: bytes, rs: bytes, payload: bytes) -> bytes:
    e_pub = x25519_public(e)
    sym.mix_hash(e_pub)
    sym.mix_key(dh(e, re, NC))
    sym.mix_key(dh(e, rs, NC))
    return e_pub + sym.encrypt_and_hash(payload)


def read_message_2(sym: Symmetric, s: bytes, e: bytes, m: bytes) -> bytes:
    if len(m) > 65535:
        raise Refused("Channel.MessageTooLong")
    if len(m) < 48:
        raise Refused("Channel.MessageTooShort")
    re = m[:32]
    sym.mix_hash(re)
    sym.mix_key(dh(e, re, NC))
    sym.mix_key(dh(s, re, NC))
    return sym.decrypt_and_hash(m[32:])


class Direction:
    """One CipherState after Split(): key and implicit counter (SPEC.md §4.4)."""

    def __init__(self, key: bytes):
        self.key, self.n = key, 0

    def seal(self, pt: bytes) -> bytes:
        if len(pt) + 16 > 65535:
            raise Refused("Channel.MessageTooLong")
        if self.n == 2**64 - 1:  # the reserved counter (§4.4)
            raise Refused("Channel.NonceExhausted")
        ct = aead_seal(self.key, channel_nonce(self.n), b"", pt)
        self.n += 1
        return ct

    def set_nonce(self, n: int):
        """Noise SetNonce, forward only (§17.2 channel.json `*_set_nonce`)."""
        if not self.n <= n < 2**64:
            raise Mismatch(f"SetNonce to {n} from counter {self.n}")
        self.n = n

    def open(self, ct: bytes) -> bytes:
        if len(ct) > 65535:
            raise Refused("Channel.MessageTooLong")
        if len(ct) < 16:
            raise Refused("Channel.MessageTooShort")
        if self.n == 2**64 - 1:  # the reserved counter (§4.4), after the length checks
            raise Refused("Channel.NonceExhausted")
        pt = aead_open(self.key, channel_nonce(self.n), b"", ct, "Channel.Crypto.AeadOpen")
        self.n += 1  # only after the tag verified
        return pt


def noise_trace_check(case: dict):
    """key_schedule.json `noise_ik`: every step of the handshake from the four key pairs."""
    k = {r: H(case[r]["private"]) for r in ("initiator_static", "initiator_ephemeral", "responder_static", "responder_ephemeral")}
    for r in k:
        check(f"{r}.public", case[r]["public"], x25519_public(k[r]).hex())
    check("prologue", case["prologue"], b"e2e-ref/channel/v1".hex())
    check("protocol_name", case["protocol_name"], PROTOCOL_NAME.hex())
    rs_pub = x25519_public(k["responder_static"])
    init = Symmetric(H(case["prologue"]), rs_pub)
    m1 = write_message_1(init, k["initiator_static"], k["initiator_ephemeral"], rs_pub, H(case["payload1"]))
    resp = Symmetric(H(case["prologue"]), rs_pub)
    re, rs, payload1 = read_message_1(resp, k["responder_static"], m1)
    check("payload1", case["payload1"], payload1.hex())
    m2 = write_message_2(resp, k["responder_ephemeral"], re, rs, H(case["payload2"]))
    payload2 = read_message_2(init, k["initiator_static"], k["initiator_ephemeral"], m2)
    check("payload2", case["payload2"], payload2.hex())
    check("message1", case["message1"], m1.hex())
    check("message2", case["message2"], m2.hex())
    check("handshake_hash", case["handshake_hash"], init.h.hex())
    check("both sides' h", init.h, resp.h)
    k1, k2 = init.split()
    check("k1", case["k1"], k1.hex())
    check("k2", case["k2"], k2.hex())
    # The file's step list, against the initiator's trace (the responder's is the same). Each
    # EncryptAndHash ends with the MixHash of its ciphertext.
    first, last = case["steps"][0], case["steps"][-1]
    check("InitializeSymmetric h", first["h"], PROTOCOL_NAME.hex())
    check("InitializeSymmetric ck", first["ck"], PROTOCOL_NAME.hex())
    check("Split", [last["k1 (initiator to responder)"], last["k2 (responder to initiator)"]], [k1.hex(), k2.hex()])
    steps = case["steps"][1:-1]
    check("number of steps", len(steps), len(init.trace))
    for s, t in zip(steps, init.trace):
        if t[0] == "MixHash":
            check(f"{s['op']} {s['what']} h", s["h"], t[1].hex())
        else:
            check(f"MixKey {s['what']} ck", s["ck"], t[1].hex())
            check(f"MixKey {s['what']} k", s["k"], t[2].hex())
    dhs = {
        "es": dh(k["initiator_ephemeral"], rs_pub, NC),
        "ss": dh(k["initiator_static"], rs_pub, NC),
        "ee": dh(k["initiator_ephemeral"], x25519_public(k["responder_ephemeral"]), NC),
        "se": dh(k["initiator_static"], x25519_public(k["responder_ephemeral"]), NC),
    }
    check("dh", case["dh"], {a: b.hex() for a, b in dhs.items()})


def verify_channel(case: dict):
    """channel.json: replay the script on a Python initiator and responder."""
    is_, ie = H(case["initiator_static"]["private"]), H(case["initiator_ephemeral"]["private"])
    rs_, re_ = H(case["responder_static"]["private"]), H(case["responder_ephemeral"]["private"])
    for r in ("initiator_static", "initiator_ephemeral", "responder_static", "responder_ephemeral"):
        check(f"{r}.public", case[r]["public"], x25519_public(H(case[r]["private"])).hex())
    known_rs = H(case["responder_static_known_to_initiator"])
    init = Symmetric(H(case["prologue"]), known_rs)
    resp_base = Symmetric(H(case["responder_prologue"]), x25519_public(rs_))
    resp = None
    peer = None
    tx = {}
    first_error = None
    for i, step in enumerate(case["steps"]):
        op = step["op"]
        try:
            if op == "initiator_write_1":
                out = write_message_1(init, is_, ie, known_rs, H(step["payload"]))
                check(f"step {i} message", step.get("message"), out.hex())
            elif op == "responder_read_1":
                trial = resp_base.copy()
                peer = read_message_1(trial, rs_, H(step["message"]))
                resp = trial  # a failed read changes nothing
                check(f"step {i} payload", step.get("payload"), peer[2].hex())
            elif op == "responder_write_2":
                out = write_message_2(resp, re_, peer[0], peer[1], H(step["payload"]))
                check(f"step {i} message", step.get("message"), out.hex())
                k1, k2 = resp.split()
                tx["responder"], tx["responder_rx"] = Direction(k2), Direction(k1)
            elif op == "initiator_read_2":
                trial = init.copy()
                payload = read_message_2(trial, is_, ie, H(step["message"]))
                init = trial
                check(f"step {i} payload", step.get("payload"), payload.hex())
                check(f"step {i} handshake_hash", step.get("handshake_hash"), init.h.hex())
                k1, k2 = init.split()
                tx["initiator"], tx["initiator_rx"] = Direction(k1), Direction(k2)
            elif op in ("initiator_send", "responder_send"):
                d = tx[op.split("_")[0]]
                check(f"step {i} n", step["n"], d.n)
                check(f"step {i} nonce", step["nonce"], channel_nonce(d.n).hex())
                check(f"step {i} ciphertext", step.get("ciphertext"), d.seal(H(step["plaintext"])).hex())
            elif op in ("initiator_receive", "responder_receive"):
                d = tx[op.split("_")[0] + "_rx"]
                check(f"step {i} plaintext", step.get("plaintext"), d.open(H(step["ciphertext"])).hex())
            elif op in ("initiator_set_nonce", "responder_set_nonce"):
                side = op.split("_")[0]
                tx[side if step["direction"] == "send" else side + "_rx"].set_nonce(step["n"])
            else:
                raise Mismatch(f"unknown op {op}")
            check(f"step {i} result", step["result"], "valid")
        except Refused as r:
            check(f"step {i} result", step["result"], "invalid")
            check(f"step {i} error", step.get("error"), r.cls)
            first_error = first_error or r.cls
    check("result", case["result"], "invalid" if first_error else "valid")
    check("error", case.get("error"), first_error)


# ---------------------------------------------------------------------------------------------
# §10–§12 e2e
# ---------------------------------------------------------------------------------------------

SIGNED_PREKEY_LABEL = b"e2e-ref/signed-prekey/v1"
IDENTITY_LABEL = b"e2e-ref/identity/v1"
X3DH_INFO = b"e2e-ref/x3dh/v1"
ROOT_INFO = b"e2e-ref/ratchet/root/v1"
MESSAGE_INFO = b"e2e-ref/ratchet/message/v1"
MAX_SKIP = 1000
MAX_SKIPPED_KEYS = 2000
MAX_SKIPPED_KEYS_PER_CLIENT = 8000
MAX_ENVELOPE_CHAIN_STEPS = 2000
MAX_ARCHIVED_SESSIONS = 4
RETIRED_BASE_KEYS = 16
MAX_PEERS = 256
MAX_PENDING = 16
MAX_ONE_TIME_PREKEYS = 100
MAX_HELD_ONE_TIME_PREKEYS = 200
ONE_TIME_PREKEYS_PER_UPLOAD = 10
PREKEYS_LOW_WATER = 5
MAX_ACCOUNTS = 4096
MAX_QUEUED_BYTES = 64 << 20
QUEUED_OVERHEAD = 49  # §5.4: a queued message counts 49 + len(content) bytes


def identity_public(ik: bytes, isk: bytes) -> bytes:
    return x25519_public(ik) + ed_public(isk)


def signed_prekey_message(ik_dh: bytes, spk_id: int, spk: bytes) -> bytes:
    return SIGNED_PREKEY_LABEL + ik_dh + spk_id.to_bytes(4, "big") + spk


def identity_signature(isk: bytes, ik_dh: bytes) -> bytes:
    """§10.1: id_sig = Ed25519-Sign(isk, "e2e-ref/identity/v1" || IK_dh) (deterministic)."""
    return Ed25519PrivateKey.from_private_bytes(isk).sign(IDENTITY_LABEL + ik_dh)


def validate_identity(ik: bytes, id_sig: bytes):
    """§11.2: the identity a prekey message claims. §10.3 step 1 on IK_A_sig, step 2 on IK_A_dh, then
    id_sig under IK_A_sig over the label and IK_A_dh with the strict rules of step 3."""
    if not ed_check_key(ik[32:]):
        raise Refused("E2e.Bundle.BadSigningKey")
    if is_low_order_x25519(ik[:32]):
        raise Refused("E2e.Bundle.LowOrderKey")
    if not ed_verify_strict(ik[32:], IDENTITY_LABEL + ik[:32], id_sig):
        raise Refused("E2e.Bundle.BadSignature")


def x3dh_sk(dhs) -> bytes:
    return hkdf(bytes(32), b"\xff" * 32 + b"".join(dhs), X3DH_INFO, 32)


def x3dh_ad(ik_a: bytes, name_a: str, ik_b: bytes, name_b: str) -> bytes:
    return ik_a + ik_b + enc_name(name_a) + enc_name(name_b)


def kdf_rk(rk: bytes, dh_out: bytes):
    out = hkdf(rk, dh_out, ROOT_INFO, 64)
    return out[:32], out[32:]


def kdf_ck(ck: bytes):
    return hmac256(ck, b"\x01"), hmac256(ck, b"\x02")


def message_keys(mk: bytes):
    out = hkdf(bytes(32), mk, MESSAGE_INFO, 44)
    return out[:32], out[32:]


def encode_header(dh_pub: bytes, pn: int, n: int) -> bytes:
    return dh_pub + pn.to_bytes(4, "big") + n.to_bytes(4, "big")


def x3dh_respond(ik_b: bytes, ik_b_pub: bytes, name_b: str, signed: dict, one_time: dict, from_name: str,
                 ik_a: bytes, id_sig: bytes, ek: bytes, spk_id: int, opk_id, pinned=None):
    """§11.2 up to the ratchet, in its order: the pin (§14.2), the claimed identity (BadSigningKey,
    LowOrderKey, BadSignature), the signed prekey, the one-time prekey, the DHs. `signed` and
    `one_time` map ids to private keys. Returns (SK, AD, spk_B)."""
    if pinned is not None and pinned != ik_a:
        raise Refused("E2e.IdentityMismatch")
    validate_identity(ik_a, id_sig)
    if spk_id not in signed:
        raise Refused("E2e.UnknownPrekey")
    if opk_id is not None and opk_id not in one_time:
        raise Refused("E2e.UnknownPrekey")
    E = "E2e.Crypto.NonContributory"
    spk = signed[spk_id]
    dhs = [dh(spk, ik_a[:32], E), dh(ik_b, ek, E), dh(spk, ek, E)]
    if opk_id is not None:
        dhs.append(dh(one_time[opk_id], ek, E))
    return x3dh_sk(dhs), x3dh_ad(ik_a, from_name, ik_b_pub, name_b), spk


class Budget:
    """§12.5 work per envelope: the KDF_CK steps all attempts on one envelope may take together."""

    def __init__(self):
        self.left = MAX_ENVELOPE_CHAIN_STEPS

    def charge(self, steps: int):
        if steps > self.left:
            raise Refused("E2e.Ratchet.WorkExceeded")  # the attempt does nothing
        self.left -= steps


class Ratchet:
    """The Double Ratchet state of SPEC.md §12.2, with §12.3 sending and §12.4 receiving."""

    def __init__(self, sk, ad, dhs=None, dhr=None):
        self.rk, self.ad = sk, ad
        self.dhs, self.dhr = dhs, dhr  # dhs: private key bytes; dhr: public key bytes
        self.cks = self.ckr = None
        self.ns = self.nr = self.pn = 0
        self.skipped = {}  # (dh, n) -> mk, insertion ordered

    def copy(self):
        c = Ratchet(self.rk, self.ad, self.dhs, self.dhr)
        c.cks, c.ckr, c.ns, c.nr, c.pn = self.cks, self.ckr, self.ns, self.nr, self.pn
        c.skipped = dict(self.skipped)
        return c

    def encrypt_with(self, new_ratchet_key: bytes | None, pt: bytes):
        """§12.3; `new_ratchet_key` is the next RNG draw, used only if the ratchet turns."""
        turned = None
        if self.cks is None:
            if self.dhr is None:
                raise Refused("E2e.Ratchet.NoSession")
            self.dhs = new_ratchet_key
            dh_out = dh(self.dhs, self.dhr, "E2e.Ratchet.Crypto.NonContributory")
            before = self.rk
            self.rk, self.cks = kdf_rk(self.rk, dh_out)
            turned = (dh_out, before, self.rk, self.cks)
        mk, self.cks = kdf_ck(self.cks)
        header = encode_header(x25519_public(self.dhs), self.pn, self.ns)
        key, nonce = message_keys(mk)
        ct = aead_seal(key, nonce, self.ad + header, pt)
        self.ns += 1
        return header, ct, mk, turned

    def skip(self, until: int):
        if until > self.nr + MAX_SKIP:
            raise Refused("E2e.Ratchet.TooFarAhead")
        while self.nr < until:
            if self.ckr is None:
                raise Refused("E2e.Ratchet.DecryptFailed")
            mk, self.ckr = kdf_ck(self.ckr)
            self.skipped[(self.dhr, self.nr)] = mk
            if len(self.skipped) > MAX_SKIPPED_KEYS:
                del self.skipped[next(iter(self.skipped))]
            self.nr += 1

    def decrypt(self, header: bytes, ct: bytes, budget: Budget | None = None):
        """§12.4 on a copy; returns (plaintext, new state, mk). `budget` is the envelope's (§12.5)."""
        s = self.copy()
        dh_pub, pn, n = header[:32], int.from_bytes(header[32:36], "big"), int.from_bytes(header[36:], "big")
        ad = s.ad + header
        if (dh_pub, n) in s.skipped:
            mk = s.skipped.pop((dh_pub, n))
            key, nonce = message_keys(mk)
            return aead_open(key, nonce, ad, ct, "E2e.Ratchet.DecryptFailed"), s, mk
        # §12.5: before any work, charge both SKIP gaps (each counted up to MAX_SKIP) to the envelope.
        # The old chain's gap exists only where §12.4 calls SKIP(pn): the header turns the ratchet and
        # CKr is not none; the new chain starts at Nr = 0. A gap below Nr skips nothing.
        new_nr, gaps = s.nr, 0
        if dh_pub != s.dhr:
            if s.ckr is not None:
                gaps += min(max(pn - s.nr, 0), MAX_SKIP)
            new_nr = 0
        gaps += min(max(n - new_nr, 0), MAX_SKIP)
        (budget if budget is not None else Budget()).charge(gaps)
        if dh_pub != s.dhr:
            if s.ckr is not None:
                s.skip(pn)
            if s.dhs is None:
                raise Refused("E2e.Ratchet.DecryptFailed")
            s.pn, s.ns, s.nr, s.dhr = s.ns, 0, 0, dh_pub
            s.rk, s.ckr = kdf_rk(s.rk, dh(s.dhs, s.dhr, "E2e.Ratchet.Crypto.NonContributory"))
            s.cks = None
        if n < s.nr:
            raise Refused("E2e.Ratchet.Replayed")
        s.skip(n)
        if s.ckr is None:
            raise Refused("E2e.Ratchet.DecryptFailed")
        if s.nr == 2**32 - 1:  # Nr + 1 would overflow: only reachable once SKIP(n) passed (§12.4)
            raise Refused("E2e.Ratchet.ChainExhausted")
        mk, s.ckr = kdf_ck(s.ckr)
        s.nr += 1
        key, nonce = message_keys(mk)
        return aead_open(key, nonce, ad, ct, "E2e.Ratchet.DecryptFailed"), s, mk


def safety_fingerprint(ik: bytes, name: str) -> str:
    h = sha512(b"\x00\x00", ik, name.encode())
    for _ in range(5200):
        h = sha512(h, ik)
    return "".join("%05d" % (int.from_bytes(h[i : i + 5], "big") % 100000) for i in range(0, 30, 5))


def safety_number(a, b) -> str:
    return "".join(sorted([safety_fingerprint(*a), safety_fingerprint(*b)]))


def display(digits: str) -> str:
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))


# --- key_schedule.json -----------------------------------------------------------------------


def verify_key_schedule(case: dict):
    f = case["function"]
    if f == "noise_ik":
        noise_trace_check(case)
    elif f == "channel_nonce":
        nonce = channel_nonce(case["n"])
        check("nonce", case["nonce"], nonce.hex())
        check("ciphertext", case["ciphertext"], aead_seal(H(case["key"]), nonce, b"", H(case["plaintext"])).hex())
    elif f == "x3dh":
        a, b = case["alice_identity"], case["bob_identity"]
        ik_a = identity_public(H(a["ik"]), H(a["isk"]))
        ik_b = identity_public(H(b["ik"]), H(b["isk"]))
        check("IK_A", a["IK"], ik_a.hex())
        check("IK_B", b["IK"], ik_b.hex())
        ek = H(case["alice_ephemeral"]["private"])
        spk = H(case["bob_signed_prekey"]["public"])
        check("SPK_B", case["bob_signed_prekey"]["public"], x25519_public(H(case["bob_signed_prekey"]["private"])).hex())
        E = "E2e.Crypto.NonContributory"
        dhs = [dh(H(a["ik"]), spk, E), dh(ek, ik_b[:32], E), dh(ek, spk, E)]
        opk = case["bob_one_time_prekey"]
        if opk is not None:
            check("OPK_B", opk["public"], x25519_public(H(opk["private"])).hex())
            dhs.append(dh(ek, H(opk["public"]), E))
        check("dh", list(case["dh"].values()), [d.hex() for d in dhs])
        check("hkdf_ikm", case["hkdf_ikm"], (b"\xff" * 32 + b"".join(dhs)).hex())
        check("hkdf_info", case["hkdf_info"], X3DH_INFO.hex())
        sk = x3dh_sk(dhs)
        check("SK", case["SK"], sk.hex())
        check("AD", case["AD"], x3dh_ad(ik_a, case["alice_name"], ik_b, case["bob_name"]).hex())
        # Bob's side gives the same SK.
        spk_priv = H(case["bob_signed_prekey"]["private"])
        E_pub = x25519_public(ek)
        bob_dhs = [dh(spk_priv, ik_a[:32], E), dh(H(b["ik"]), E_pub, E), dh(spk_priv, E_pub, E)]
        if opk is not None:
            bob_dhs.append(dh(H(opk["private"]), E_pub, E))
        check("Bob's SK", sk, x3dh_sk(bob_dhs))
    elif f == "x3dh_respond":
        b = case["bob_identity"]
        ik_b = identity_public(H(b["ik"]), H(b["isk"]))
        spks = {case["bob_signed_prekey"]["id"]: H(case["bob_signed_prekey"]["private"])}
        opks = {o["id"]: H(o["private"]) for o in case["bob_one_time_prekeys"]}
        try:
            sk, ad, _ = x3dh_respond(H(b["ik"]), ik_b, case["bob_name"], spks, opks, case["from"], H(case["IK_A"]),
                                     H(case["id_sig"]), H(case["EK_A"]), case["spk_id"], case["opk_id"])
            check("result", case["result"], "valid")
            check("SK", case["SK"], sk.hex())
            check("AD", case["AD"], ad.hex())
        except Refused as r:
            check("result", case["result"], "invalid")
            check("error", case["error"], r.cls)
    elif f == "kdf_rk":
        ours = H(case["our_ratchet_key"]["private"])
        check("public", case["our_ratchet_key"]["public"], x25519_public(ours).hex())
        check("hkdf_info", case["hkdf_info"], ROOT_INFO.hex())
        try:
            dh_out = dh(ours, H(case["their_ratchet_key"]), "E2e.Ratchet.Crypto.NonContributory")
            rk, ck = kdf_rk(H(case["RK"]), dh_out)
            check("result", case["result"], "valid")
            check("dh_out", case["dh_out"], dh_out.hex())
            check("next_RK", case["next_RK"], rk.hex())
            check("CK", case["CK"], ck.hex())
        except Refused as r:
            check("result", case["result"], "invalid")
            check("error", case["error"], r.cls)
    elif f == "kdf_ck":
        ck = H(case["CK"])
        for step in case["steps"]:
            mk, nxt = kdf_ck(ck)
            check("CK", step["CK"], ck.hex())
            check("MK", step["MK = HMAC(CK, 0x01)"], mk.hex())
            check("next CK", step["next_CK = HMAC(CK, 0x02)"], nxt.hex())
            ck = nxt
    elif f == "message_keys":
        key, nonce = message_keys(H(case["MK"]))
        check("aead_key", case["aead_key"], key.hex())
        check("aead_nonce", case["aead_nonce"], nonce.hex())
        ad = H(case["AD"]) + H(case["header"])
        check("aead_ad", case["aead_ad"], ad.hex())
        check("ciphertext", case["ciphertext"], aead_seal(key, nonce, ad, H(case["plaintext"])).hex())
    elif f == "ratchet_first_message":
        sk, ad = H(case["SK"]), H(case["AD"])
        spk = H(case["bob_signed_prekey"]["private"])
        alice = Ratchet(sk, ad, dhr=x25519_public(spk))
        header, ct, mk, turned = alice.encrypt_with(H(case["alice_ratchet_key"]["private"]), H(case["plaintext"]))
        check("dh_out", case["dh_out"], turned[0].hex())
        check("RK_after", case["RK_after"], turned[2].hex())
        check("CKs", case["CKs"], turned[3].hex())
        check("MK", case["MK"], mk.hex())
        check("CKs_after", case["CKs_after"], alice.cks.hex())
        key, nonce = message_keys(mk)
        check("aead_key", case["aead_key"], key.hex())
        check("aead_nonce", case["aead_nonce"], nonce.hex())
        check("header", case["header"], header.hex())
        check("ciphertext", case["ciphertext"], ct.hex())
        bob = Ratchet(sk, ad, dhs=spk)
        pt, _, _ = bob.decrypt(header, ct)
        check("Bob decrypts", case["plaintext"], pt.hex())
    elif f == "ratchet_receive":
        sk, ad = H(case["SK"]), H(case["AD"])
        spk = H(case["bob_signed_prekey"]["private"])
        alice = Ratchet(sk, ad, dhr=x25519_public(spk))
        sent = [alice.encrypt_with(H(case["alice_ratchet_key"]["private"]), b"message %d" % i)[:2] for i in range(case["messages_sent"])]
        bob = Ratchet(sk, ad, dhs=spk)
        first_error = None
        for i, d in enumerate(case["deliveries"]):
            header, ct = sent[d["message"]]
            if d["tamper"] == "ciphertext":
                ct = bytes([ct[0] ^ 1]) + ct[1:]
            elif d["tamper"] == "n = 2^32 - 1":
                header = header[:36] + (2**32 - 1).to_bytes(4, "big")
            elif d["tamper"] == "dh = 0":
                header = bytes(32) + header[32:]
            elif d["tamper"] == "dh = 9, pn = 1500":
                header = bytes([9]) + bytes(31) + (1500).to_bytes(4, "big") + header[36:]
            elif d["tamper"] is not None:
                raise Mismatch(f"unknown tamper {d['tamper']}")
            check(f"delivery {i} header", d["header"], header.hex())
            check(f"delivery {i} ciphertext", d["ciphertext"], ct.hex())
            try:
                pt, bob, _ = bob.decrypt(header, ct)
                check(f"delivery {i} result", d["result"], "valid")
                check(f"delivery {i} plaintext", d["plaintext"], pt.hex())
            except Refused as r:
                check(f"delivery {i} result", d["result"], "invalid")
                check(f"delivery {i} error", d["error"], r.cls)
                first_error = first_error or r.cls
            check(f"delivery {i} skipped keys", d["skipped_keys_after"], len(bob.skipped))
            start = case.get("receiver_index_after_first")
            if i == 0 and start is not None:  # §17.2: Nr moved forward, CKr kept
                if bob.ckr is None or start < bob.nr:
                    raise Mismatch("receiver_index_after_first without a chain or below Nr")
                bob.nr = start
        check("result", case["result"], "invalid" if first_error else "valid")
        check("error", case.get("error"), first_error)
        return
    elif f == "ratchet_edge":
        sk, ad = H(case["SK"]), H(case["AD"])
        spk = H(case["bob_signed_prekey"]["private"])
        r = Ratchet(sk, ad, dhr=x25519_public(spk)) if case["role"] == "initiator" else Ratchet(sk, ad, dhs=spk)
        draw = H(case["alice_ratchet_key"]["private"])
        outcome = None
        try:
            for i in range(case["messages_sent"]):
                r.encrypt_with(draw, b"message %d" % i)
            if case["then"] == "send":
                r.encrypt_with(draw, b"message %d" % case["messages_sent"])
            else:
                r.decrypt(H(case["header"]), H(case["ciphertext"]))
        except Refused as e:
            outcome = e.cls
        check("result", case["result"], "invalid" if outcome else "valid")
        check("error", case.get("error"), outcome)
        return
    elif f == "safety_number":
        a, b = (H(case["a"]["IK"]), case["a"]["name"]), (H(case["b"]["IK"]), case["b"]["name"])
        check("iterations", case["iterations"], 5200)
        check("fingerprint a", case["a"]["fingerprint"], safety_fingerprint(*a))
        check("fingerprint b", case["b"]["fingerprint"], safety_fingerprint(*b))
        digits = safety_number(a, b)
        check("safety_number", case["safety_number"], digits)
        check("displayed", case["displayed"], display(digits))
    else:
        raise Mismatch(f"unknown function {f}")
    if case["result"] == "valid":
        check("error", case.get("error"), None)


# --- bundles.json ----------------------------------------------------------------------------


def validate_bundle(ik: bytes, spk_id: int, spk: bytes, sig: bytes, opk_keys):
    """SPEC.md §10.3 steps 1-3."""
    if not ed_check_key(ik[32:]):
        raise Refused("E2e.Bundle.BadSigningKey")
    if any(is_low_order_x25519(k) for k in [ik[:32], spk, *opk_keys]):
        raise Refused("E2e.Bundle.LowOrderKey")
    if not ed_verify_strict(ik[32:], signed_prekey_message(ik[:32], spk_id, spk), sig):
        raise Refused("E2e.Bundle.BadSignature")


class Directory:
    """The server's prekey directory (SPEC.md §15.2), for one name."""

    def __init__(self):
        self.stored = None  # dict(IK, spk_id, spk, spk_sig, opks: list)
        self.takers = set()  # requesters that took a one-time prekey since the last upload (§15.2)

    def upload(self, u: dict) -> int:
        opks = u["one_time_prekeys"]
        validate_bundle(H(u["IK"]), u["spk_id"], H(u["spk"]), H(u["spk_sig"]), [H(o["key"]) for o in opks])
        same = self.stored is not None and self.stored["IK"] == u["IK"]
        stored_opks = self.stored["opks"] if same else []
        stored_ids = ([self.stored["spk_id"]] + [o["id"] for o in stored_opks]) if same else []
        if len(opks) > MAX_ONE_TIME_PREKEYS or len(opks) + len(stored_opks) > MAX_ONE_TIME_PREKEYS:
            raise Refused("E2e.Bundle.TooManyPrekeys")
        ids = [o["id"] for o in opks]
        if len(set(ids)) != len(ids) or u["spk_id"] in ids or set(ids) & set(stored_ids):
            raise Refused("E2e.Bundle.DuplicatePrekeyId")
        self.stored = {"IK": u["IK"], "spk_id": u["spk_id"], "spk": u["spk"], "spk_sig": u["spk_sig"], "opks": stored_opks + opks}
        self.takers = set()  # a new upload: every requester may take one again
        return len(self.stored["opks"])

    def fetch(self, name: str, by: str) -> dict:
        """§15.2: the bundle with the oldest stored one-time prekey, which is deleted; none if `by`
        already took one since the last upload, or none is left."""
        s, opk = self.stored, None
        if s["opks"] and by not in self.takers:
            opk = s["opks"].pop(0)
            self.takers.add(by)
        return {"type": "Bundle", "name": name, "IK": s["IK"], "spk_id": s["spk_id"], "spk": s["spk"],
                "spk_sig": s["spk_sig"], "one_time_prekey": opk}


def verify_bundle(case: dict):
    if case["direction"] == "upload":
        d = Directory()
        if case["stored"] is not None:
            d.upload(case["stored"])
        u = case["upload"]
        check("signed_message", case["signed_message"], signed_prekey_message(H(u["IK"])[:32], u["spk_id"], H(u["spk"])).hex())
        check("message", case["message"], encode_message({"type": "UploadBundle", **u}).hex())
        try:
            count = d.upload(u)
            reply = {"type": "BundleStored", "one_time_prekeys": count}
            check("result", case["result"], "valid")
        except Refused as r:
            check("result", case["result"], "invalid")
            check("error", case["error"], r.cls)
            reply = {"type": "BundleRefused", "reason": r.cls.split(".")[-1]}
        check("reply", case["reply"], reply)
        check("reply_hex", case["reply_hex"], encode_message(reply).hex())
    else:
        b = case["bundle"]
        check("signed_message", case["signed_message"], signed_prekey_message(H(b["IK"])[:32], b["spk_id"], H(b["spk"])).hex())
        check("message", case["message"], encode_message({"type": "Bundle", "name": case["name"], **b}).hex())
        try:
            opk = [H(b["one_time_prekey"]["key"])] if b["one_time_prekey"] else []
            validate_bundle(H(b["IK"]), b["spk_id"], H(b["spk"]), H(b["spk_sig"]), opk)
            if case["pinned"] is not None and case["pinned"] != b["IK"]:
                raise Refused("E2e.IdentityMismatch")
            check("result", case["result"], "valid")
        except Refused as r:
            check("result", case["result"], "invalid")
            check("error", case["error"], r.cls)


# --- transcripts -----------------------------------------------------------------------------


class ReplayWindow:
    """SPEC.md §5.3, for hop `Deliver` only (e2e messages use no window)."""

    def __init__(self):
        self.highest, self.seen = 0, set()

    def check(self, i: int):
        if i == 0 or i <= self.highest - 64:
            raise Refused("Protocol.OutOfWindow")
        if i in self.seen:
            raise Refused("Protocol.Replayed")

    def accept(self, i: int):
        self.seen.add(i)
        self.highest = max(self.highest, i)
        self.seen = {s for s in self.seen if s > self.highest - 64}


class Session:
    """One session with a peer (§11.3, §12.2): its ratchet, its base key EK_A, the peer's identity, and
    for a session this client initiated the prekey header it repeats (§13) until it hears back."""

    def __init__(self, ratchet: Ratchet, base_key: bytes, identity: bytes, prekey: dict | None = None):
        self.ratchet, self.base_key, self.identity = ratchet, base_key, identity
        self.prekey = prekey  # the envelope fields IK, id_sig, EK, spk_id, opk_id (initiator only)
        self.answered = prekey is None  # an initiator has decrypted nothing from the peer yet


class Peer:
    """What a client keeps per peer name (§11.3): the current session, up to MAX_ARCHIVED_SESSIONS
    replaced ones (newest first), the last RETIRED_BASE_KEYS base keys of sessions that left them, and
    when it was last active (a session start, an accepted or a sent message)."""

    def __init__(self):
        self.current, self.archived, self.retired, self.active = None, [], [], 0

    def sessions(self):
        return ([self.current] if self.current is not None else []) + self.archived

    def retire(self, session: Session):
        self.retired = (self.retired + [session.base_key])[-RETIRED_BASE_KEYS:]

    def install(self, session: Session):
        """A new session becomes current. One identity per peer: a different identity first deletes
        the name's sessions (their base keys are retired; the client reports IdentityChanged)."""
        if any(s.identity != session.identity for s in self.sessions()):
            for s in self.sessions():
                self.retire(s)
            self.current, self.archived = None, []
        if self.current is not None:
            self.archived.insert(0, self.current)
        while len(self.archived) > MAX_ARCHIVED_SESSIONS:
            self.retire(self.archived.pop())
        self.current = session

    def promote(self, session: Session):
        """The session that opened a message becomes current; the current one goes to the front of the
        archive, as the newest archived session (§11.3)."""
        if session is not self.current:
            self.archived.remove(session)
            if self.current is not None:
                self.archived.insert(0, self.current)
            self.current = session

    def skipped_count(self) -> int:
        return sum(len(s.ratchet.skipped) for s in self.sessions())


class Party:
    def __init__(self, name: str, info: dict):
        self.name = name
        self.static = H(info["channel_static"]["private"])
        check(f"{name} static public", info["channel_static"]["public"], x25519_public(self.static).hex())
        self.identity = None
        self.later_identities = list(info.get("later_identities", []))  # for new_identity calls
        self.reset_e2e_state()
        if "identity" in info:
            self.load_identity(info)
        self.held = {}  # (ratchet key, n) -> the session a held message was encrypted in (§17.2 Hold)
        self.windows = {}  # hop senders' replay windows, least recently accepted first (§5.3)
        self.last_id = 0  # the last message id it used (§5.3; a restored state states it, §18.2)
        self.replenish = None  # after PrekeysLow: how many one-time prekeys its next upload carries (§15.3)
        # the server's side (§15.2): name -> Directory, and per requester the answer its last
        # FetchBundle gets from an honest server, per uploader the answer to its last upload
        self.directory, self.fetch_answers, self.upload_answers = {}, {}, {}

    def load_identity(self, info: dict):
        """An e2e identity and its first prekeys (§10.1-§10.2), and a client state with no sessions."""
        i, name = info["identity"], self.name
        self.ik, self.isk = H(i["ik"]), H(i["isk"])
        self.identity = identity_public(self.ik, self.isk)
        check(f"{name} IK", i["IK"], self.identity.hex())
        self.id_sig = identity_signature(self.isk, self.identity[:32])
        self.signed, self.one_time = {}, {}  # id -> private key (§10.2: one id counter, two kinds)
        for p in info["prekeys"]:
            check(f"{name} prekey {p['id']}", p["public"], x25519_public(H(p["private"])).hex())
            if p["kind"] == "signed":
                msg = signed_prekey_message(self.identity[:32], p["id"], H(p["public"]))
                check(f"{name} spk signature", p["signature"], Ed25519PrivateKey.from_private_bytes(self.isk).sign(msg).hex())
                self.signed[p["id"]] = H(p["private"])
            else:
                check(f"{name} prekey {p['id']} kind", p["kind"], "one-time")
                self.one_time[p["id"]] = H(p["private"])
        self.reset_e2e_state()

    def reset_e2e_state(self):
        self.peers = {}  # name -> Peer (§11.3)
        self.pins = {}  # name -> pinned IK (§14.2)
        self.awaiting = set()  # names it sent FetchBundle for and has no answer from yet (§15.3)
        self.pending = {}  # name -> messages waiting for its bundle (§15.3, at most MAX_PENDING)
        self.next_prekey_id = 12  # §10.2: ids 1..=11 are made on creation
        self.clock = 0
        self.bundle = None
        self.chains_by_dh = {}

    def pin(self, name: str, identity: bytes):
        """§14.2: pin, and delete every session with another identity, retiring its base key (§11.3)."""
        self.pins[name] = identity
        peer = self.peers.get(name)
        for s in list(peer.sessions()) if peer else []:
            if s.identity != identity:
                peer.retire(s)
                if peer.current is s:
                    peer.current = None
                else:
                    peer.archived.remove(s)

    def prekeys(self, i: int) -> bytes:
        return self.signed.get(i, self.one_time.get(i))

    def touch(self, name: str, skipped_before: int | None = None):
        """Activity of §11.3; after a message that stored skipped keys, §12.5's bound on the client."""
        self.clock += 1
        self.peers[name].active = self.clock
        if skipped_before is not None and self.peers[name].skipped_count() > skipped_before:
            self.cap_skipped_keys()

    def cap_skipped_keys(self):
        """§12.5 MAX_SKIPPED_KEYS_PER_CLIENT: evict from the least recently active peers first, within a
        peer from its oldest archived session to its current one, within a session oldest key first."""
        excess = sum(p.skipped_count() for p in self.peers.values()) - MAX_SKIPPED_KEYS_PER_CLIENT
        for _, peer in sorted((p.active, n) for n, p in self.peers.items()):
            for s in reversed(self.peers[peer].sessions()):  # archived newest first, so: oldest first
                while excess > 0 and s.ratchet.skipped:
                    del s.ratchet.skipped[next(iter(s.ratchet.skipped))]
                    excess -= 1

    def make_room(self, name: str):
        """§11.3: a session with one more name than MAX_PEERS evicts the least recently active peer,
        sparing pinned peers, peers it awaits a bundle for and unanswered initiators; else TooManyPeers."""
        if name in self.peers or len(self.peers) < MAX_PEERS:
            return
        spared = lambda n, p: n in self.pins or n in self.awaiting or (p.current is not None and not p.current.answered)
        candidates = [(p.active, n) for n, p in self.peers.items() if not spared(n, p)]
        if not candidates:
            raise Refused("E2e.TooManyPeers")
        del self.peers[min(candidates)[1]]  # with its sessions and retired base keys

    def start_session(self, name: str, session: Session, skipped_before: int | None = None):
        self.peers.setdefault(name, Peer()).install(session)
        self.touch(name, skipped_before)

    def accept_hop(self, sender: str, i: int):
        """§5.3: check, then record; the most recently accepted sender last, MAX_PEERS windows at most."""
        window = self.windows.get(sender, ReplayWindow())
        window.check(i)
        window.accept(i)
        self.windows.pop(sender, None)
        self.windows[sender] = window
        if len(self.windows) > MAX_PEERS:
            del self.windows[next(iter(self.windows))]  # evicts, never refuses


class ServerBook:
    """The server's two bounds (§5.1, §5.4), with the run's `server_limits` if it states them
    (§17.2): the names it binds, and what its mailboxes hold."""

    def __init__(self, limits: dict):
        self.max_accounts, self.max_queued_bytes = limits["max_accounts"], limits["max_queued_bytes"]
        self.bound = set()
        self.sent = {}  # (sender, id) -> (recipient, bytes counted): relay requests not yet answered
        self.queued = {}  # (recipient, sender, id) -> bytes counted, while in a mailbox

    def admits(self, name: str) -> bool:
        return name in self.bound or len(self.bound) < self.max_accounts

    def registration(self, name: str, answer: dict):
        """§5.1 steps 2 and 5: a name not bound yet is refused with ServerFull exactly when the
        server binds MAX_ACCOUNTS names; a Ready it admits binds the name."""
        full = answer == {"type": "Refused", "reason": "ServerFull"}
        if full == self.admits(name) and (full or answer["type"] == "Welcome"):
            raise Mismatch(f"{answer} for {name} with {len(self.bound)} of {self.max_accounts} names bound")

    def request(self, sender: str, m: dict):
        content = H(m["body"] if m["type"] == "Send" else m["envelope"])
        self.sent[(sender, m["id"])] = (m["to"], QUEUED_OVERHEAD + len(content))

    def answer(self, sender: str, m: dict):
        """An Ack or Reject to `sender`: Queued fits the total, ServerFull does not (§5.4)."""
        to, size = self.sent.pop((sender, m["id"]), (None, None))
        if size is None:
            return  # an answer to no request of the run's (a forgery)
        total = sum(self.queued.values()) + size
        if m["type"] == "Ack" and m["status"] == "Queued":
            if total > self.max_queued_bytes:
                raise Mismatch(f"queued beyond the server's {self.max_queued_bytes} bytes: {total}")
            self.queued[(to, sender, m["id"])] = size
        elif m == {"type": "Reject", "id": m["id"], "reason": "ServerFull"} and total <= self.max_queued_bytes:
            raise Mismatch(f"ServerFull with {total} of {self.max_queued_bytes} bytes")

    def delivered(self, to: str, m: dict):
        self.queued.pop((to, m["from"], m["id"]), None)  # a mailbox is emptied as it is sent (§5.1)


def verify_transcript_run(run: dict, results: list):
    """Re-derives a whole run: channels from the listed keys, every frame in order, and (e2e) the
    handshake and the Double Ratchet of both clients, receiving with the full §12.4 algorithm."""
    # §17.2: the server, Alice and Bob, and Carol in a run whose script names her
    clients = ("alice", "bob") + (("carol",) if "carol" in run["parties"] else ())
    parties = {n: Party(n, run["parties"][n]) for n in ("server",) + clients}
    parties["server"].book = ServerBook(run.get("server_limits", {"max_accounts": MAX_ACCOUNTS, "max_queued_bytes": MAX_QUEUED_BYTES}))
    draws = [H(d["bytes"]) for d in run["rng_draws"]]
    stream = rng_stream(run["seed"], 32 * len(draws))
    for i, d in enumerate(draws):
        check(f"rng draw {i}", stream[32 * i : 32 * i + 32].hex(), d.hex())
    check("server static = draw 0", parties["server"].static, draws[0])
    check("alice static = draw 1", parties["alice"].static, draws[1])
    check("bob static = draw 2", parties["bob"].static, draws[2])
    e2e = parties["alice"].identity is not None
    if e2e:
        for who, first in (("alice", 3), ("bob", 16)):
            p = parties[who]
            check(f"{who} ik, isk, prekeys 1..=11 = draws {first}..", [p.ik, p.isk] + [p.prekeys(i) for i in range(1, 12)], draws[first : first + 13])
    if "carol" in parties:  # §9.1: her static key, then (e2e) her identity, after Alice's and Bob's
        first = 29 if e2e else 3
        check(f"carol static = draw {first}", parties["carol"].static, draws[first])
        if e2e:
            p = parties["carol"]
            check(f"carol ik, isk, prekeys 1..=11 = draws {first + 1}..", [p.ik, p.isk] + [p.prekeys(i) for i in range(1, 12)], draws[first + 1 : first + 14])
    for who in clients:  # a later identity is drawn as the first ones are: ik, isk, prekeys 1..=11
        for later in run["parties"][who].get("later_identities", []):
            p = Party(who, {**run["parties"][who], **later, "later_identities": []})
            first = draws.index(p.ik)
            check(f"{who}'s later ik, isk, prekeys 1..=11 = draws {first}..", [p.ik, p.isk] + [p.prekeys(i) for i in range(1, 12)], draws[first : first + 13])
    draw_by_public = {}
    for d in draws:
        if len(d) == 32:
            draw_by_public.setdefault(x25519_public(d), d)
    links = {}
    for link in run["links"]:
        links[link["link"]] = link
        for side in ("client_ephemeral", "server_ephemeral"):
            if link[side] is not None:
                check(f"link {link['link']} {side}", link[side]["public"], x25519_public(H(link[side]["private"])).hex())
                if H(link[side]["private"]) not in draws:
                    raise Mismatch(f"link {link['link']} {side} is not an RNG draw")
    channels = {}  # link -> {"c2s": Direction, "s2c": Direction, ...}
    server_pub = x25519_public(parties["server"].static)

    for case in run["cases"]:
        cid = case["id"]
        try:
            if "call" in case:
                verify_call(case, parties)
                results.append((cid, None))
                continue
            verify_transcript_case(case, parties, links, channels, server_pub, draw_by_public, run)
            results.append((cid, None))
        except (Mismatch, Refused, KeyError, ValueError, TypeError) as e:
            results.append((cid, f"{type(e).__name__}: {e}"))
    if "safety_numbers" in run["summary"]:
        a, b = parties["alice"], parties["bob"]

        def shown(party, other):
            """§9.1: the number a client shows for its current session with the other, or null."""
            peer = party.peers.get(other.name)
            if peer is None or peer.current is None:
                return None
            return display(safety_number((party.identity, party.name), (peer.current.identity, other.name)))

        try:
            check("alice's safety number", run["summary"]["safety_numbers"]["alice"], shown(a, b))
            check("bob's safety number", run["summary"]["safety_numbers"]["bob"], shown(b, a))
            results.append((run["id"] + "/safety_numbers", None))
        except Mismatch as e:
            results.append((run["id"] + "/safety_numbers", str(e)))


def verify_call(case, parties):
    """A client call that crosses no link (§17.2): §15.3 for sends, §14.2 for verification."""
    party, args, outcome = parties[case["party"]], case["args"], None
    if case["call"] == "send_e2e":
        to = args["to"]
        if to == party.name:
            outcome = "Misuse.SendToSelf"  # §15.3: no e2e message to one's own name
        elif to in party.awaiting:  # §15.3: it waits behind the FetchBundle already sent
            if party.pending.get(to, 0) >= MAX_PENDING:
                outcome = "Misuse.PendingFull"
            else:
                party.pending[to] = party.pending.get(to, 0) + 1
        else:
            raise Mismatch("a send_e2e that crosses no link needs a request outstanding for its peer")
    elif case["call"] == "seal_e2e":  # §17.2 Hold: `count` messages of the current sending chain, held
        peer = party.peers.get(args["to"])
        s = peer.current if peer else None
        if s is None or s.ratchet.cks is None:
            raise Mismatch("a Hold needs a sending chain in a current session")
        dh_pub = x25519_public(s.ratchet.dhs)
        for n in range(s.ratchet.ns, s.ratchet.ns + int(args["count"])):
            party.held[(dh_pub, n)] = s
        s.ratchet.ns += int(args["count"])
        party.touch(args["to"])
    elif case["call"] == "verify_safety_number":
        peer = party.peers.get(args["peer"])
        if peer is None or peer.current is None:
            raise Mismatch("verify_safety_number without a session")
        identity = peer.current.identity
        expected = display(safety_number((party.identity, party.name), (identity, args["peer"])))
        if args["number"] != expected:
            outcome = "E2e.SafetyNumberMismatch"  # pins nothing
        else:
            party.pin(args["peer"], identity)
    elif case["call"] == "verify_peer":  # §14.2: the identity the users compared in person
        party.pin(args["peer"], H(args["identity"]))
    elif case["call"] == "restore_state":  # §18: the client restarts with the stated field
        if "last_id" in args:
            last_id = int(args["last_id"])
            if not party.last_id <= last_id < 2**64:
                raise Mismatch("restore_state with a last id below the client's")
            party.last_id = last_id
        if "next_prekey_id" in args:  # §18.3 Prekeys.next_id, at most 2^32
            next_id = int(args["next_prekey_id"])
            if not party.next_prekey_id <= next_id <= 2**32:
                raise Mismatch("restore_state with a next prekey id out of range")
            party.next_prekey_id = next_id
        if "peers" in args:  # §17.2 RestoreWithoutSessions: §18.3 `peers` emptied, the rest kept
            if args["peers"] != "none":
                raise Mismatch(f"restore_state with peers {args['peers']!r}")
            party.peers = {}
    elif case["call"] == "new_identity":  # §17.2 NewIdentity: the account stays, the e2e state is new
        party.load_identity(party.later_identities.pop(0))
    elif case["call"] == "replenish_prekeys":  # §10.2: a replenishment refused before anything is sent
        if party.next_prekey_id + int(args["count"]) - 1 <= 2**32 - 1:
            raise Mismatch("a replenish_prekeys call case with ids left")
        outcome = "E2e.PrekeyIdsExhausted"  # ids never wrap
    elif case["call"] == "send":  # hop: a send refused before anything is sent
        if party.last_id != 2**64 - 1:
            raise Mismatch("a hop send call case with ids left")
        outcome = "Misuse.IdsExhausted"  # §5.3: 2^64 - 1 messages exhaust the counter
    else:
        raise Mismatch(f"unknown call {case['call']}")
    check("result", case["result"], "invalid" if outcome else "valid")
    check("error", case.get("error"), outcome)


def verify_transcript_case(case, parties, links, channels, server_pub, draw_by_public, run):
    frame = H(case["frame"])
    link_id = case.get("link")
    outcome = None
    try:
        f = decode_link(frame)
        noise = H(f["noise"])
        if link_id not in links:  # no handshake was ever made on it (§17.2)
            if f["type"] != "HandshakeInit":  # §5.2: only HandshakeInit opens a link
                raise Refused("Protocol.Unexpected")
            raise Mismatch(f"a HandshakeInit on link {link_id}, which `links` does not list")
        link = links[link_id]
        client = parties[link["client"]]
        ce, se = H(link["client_ephemeral"]["private"]), link["server_ephemeral"]
        ch = channels.setdefault(link_id, {})
        if f["type"] == "HandshakeInit":
            if "c2s" in ch:  # §5.2: a HandshakeInit on a link that has a channel; nothing changes
                raise Refused("Protocol.Unexpected")
            sym = Symmetric(b"e2e-ref/channel/v1", server_pub)
            payload1 = H(case["payload"])
            check("payload_message", case["payload_message"], decode_message(payload1))
            m1 = write_message_1(sym, client.static, ce, server_pub, payload1)
            check("message 1", noise.hex(), m1.hex())
            ch["init"], ch["payload1"] = sym, payload1
        elif f["type"] == "HandshakeResp":
            sym = ch["init"]
            resp = Symmetric(b"e2e-ref/channel/v1", server_pub)
            # message 1 as it was sent on this link, with its own payload (§5.1: normally Register)
            m1 = write_message_1(Symmetric(b"e2e-ref/channel/v1", server_pub), client.static, ce, server_pub, ch["payload1"])
            re, rs, _ = read_message_1(resp, parties["server"].static, m1)
            payload2 = H(case["payload"])
            m2 = write_message_2(resp, H(se["private"]), re, rs, payload2)
            check("message 2", noise.hex(), m2.hex())
            answer = decode_message(read_message_2(sym, client.static, ce, noise))
            check("payload_message", case["payload_message"], answer)
            check("handshake_hash", link["handshake_hash"], sym.h.hex())
            k1, k2 = sym.split()
            check("k1", link["k1_client_to_server"], k1.hex())
            check("k2", link["k2_server_to_client"], k2.hex())
            ch["c2s"], ch["s2c"] = Direction(k1), Direction(k2)
            registered = decode_message(ch["payload1"])
            if registered["type"] == "Register":
                parties["server"].book.registration(registered["name"], answer)
            if answer["type"] == "Welcome" and answer["name"] != registered.get("name"):
                raise Refused("Protocol.WrongName")  # §5.1 step 4: only a Welcome for its own name
        else:
            direction = "s2c" if case["from"] == "server" else "c2s"
            d = ch[direction]
            check("key", case["key"], d.key.hex())
            check("n", case["n"], d.n)
            check("nonce", case["nonce"], channel_nonce(d.n).hex())
            plaintext = d.open(noise)
            check("plaintext", case["plaintext"], plaintext.hex())
            message = decode_message(plaintext)
            check("message", case["message"], message)
            if message["type"] not in ("Bundle", "NoBundle"):
                check("send_failed", case.get("send_failed"), None)
            outcome = on_message(case, message, parties, draw_by_public, run)
    except Refused as r:
        outcome = r.cls
    if outcome is None:
        check("result", case["result"], "valid")
        check("error", case.get("error"), None)
    else:
        check("result", case["result"], "invalid")
        check("error", case.get("error"), outcome)


def on_message(case, m, parties, draw_by_public, run):
    """What the receiver does with an authenticated message; returns an error class or None."""
    t = m["type"]
    server = parties["server"]
    if t in ("Send", "E2eSend"):
        sender = parties[case["from"]]
        sender.last_id = max(sender.last_id, m["id"])
        server.book.request(sender.name, m)
    elif t in ("Ack", "Reject"):
        server.book.answer(case["to"], m)
    elif t in ("Deliver", "E2eDeliver"):
        server.book.delivered(case["to"], m)
    elif t == "Ready" and server.book.admits(case["from"]):
        server.book.bound.add(case["from"])
    elif t == "Refused":  # §5.1 step 5: refused at Ready
        server.book.registration(case["to"], m)
    if t == "UploadBundle":  # §15.2, as the honest server stores it; §15.3 for a replenishment
        sender = parties[case["from"]]
        upload = {k: m[k] for k in ("IK", "spk_id", "spk", "spk_sig", "one_time_prekeys")}
        if sender.replenish is not None:  # after PrekeysLow: exactly that many, and nothing older
            ids = [o["id"] for o in m["one_time_prekeys"]]
            check("replenished one-time prekey ids", ids, list(range(sender.next_prekey_id, sender.next_prekey_id + sender.replenish)))
            sender.replenish = None
        # §10.2: ids from the next one on are a replenishment, drawn in id order; the client holds
        # them whether or not the server stores them, and at most MAX_HELD_ONE_TIME_PREKEYS, the
        # oldest (lowest ids) dropped first
        made = [o for o in m["one_time_prekeys"] if o["id"] >= sender.next_prekey_id]
        check("replenished one-time prekey ids", [o["id"] for o in made], list(range(sender.next_prekey_id, sender.next_prekey_id + len(made))))
        for o in made:
            if H(o["key"]) not in draw_by_public:
                raise Mismatch(f"replenished one-time prekey {o['id']} is not an RNG draw")
            sender.one_time[o["id"]] = draw_by_public[H(o["key"])]
        sender.next_prekey_id += len(made)
        while len(sender.one_time) > MAX_HELD_ONE_TIME_PREKEYS:
            del sender.one_time[min(sender.one_time)]
        try:
            count = server.directory.setdefault(sender.name, Directory()).upload(upload)
            server.upload_answers[sender.name] = {"type": "BundleStored", "one_time_prekeys": count}
        except Refused as r:
            server.upload_answers[sender.name] = {"type": "BundleRefused", "reason": r.cls.split(".")[-1]}
        return None
    if t in ("BundleStored", "BundleRefused"):
        check("the answer to the upload", m, server.upload_answers.pop(case["to"]))
        return None
    if t == "PrekeysLow":  # §15.2: the number left; §15.3: the client makes that many more, up to 10
        d = server.directory.get(case["to"])
        check("PrekeysLow count", m["one_time_prekeys"], len(d.stored["opks"]) if d and d.stored else None)
        check("at most PREKEYS_LOW_WATER left", m["one_time_prekeys"] <= PREKEYS_LOW_WATER, True)
        parties[case["to"]].replenish = min(ONE_TIME_PREKEYS_PER_UPLOAD, MAX_ONE_TIME_PREKEYS - m["one_time_prekeys"])
        return None
    if t == "FetchBundle":
        sender = parties[case["from"]]
        d = server.directory.get(m["name"])
        if d is None or d.stored is None:
            server.fetch_answers[sender.name] = {"type": "NoBundle", "name": m["name"]}
        else:
            server.fetch_answers[sender.name] = d.fetch(m["name"], sender.name)
        sender.awaiting.add(m["name"])
        # one request per queue: the first waiting message (a repeat after reconnecting keeps the count)
        sender.pending[m["name"]] = max(sender.pending.get(m["name"], 0), 1)
        return None
    if t in ("Bundle", "NoBundle"):
        to = parties[case["to"]]
        # What the honest server answers (§15.2), unless the server plays its own game: a bundle
        # under an identity its directory does not hold for the name is the server's own.
        honest = server.fetch_answers.pop(to.name, None)
        d = server.directory.get(m["name"])
        held = d.stored["IK"] if d and d.stored else None
        if honest is not None and honest["name"] == m["name"] and m.get("IK") == held:
            check("the honest server's answer to the fetch", m, honest)
        if m["name"] not in to.awaiting:  # §15.3: one it did not ask for
            return "Protocol.Unexpected"
        to.awaiting.discard(m["name"])
        to.pending.pop(m["name"], None)  # sent, or discarded
        # §15.3, §17.2: a refused bundle, or NoBundle, discards the waiting messages: SendFailed
        failed = "E2e.NoBundle" if t == "NoBundle" else None
        if t == "Bundle":
            try:
                opk = [H(m["one_time_prekey"]["key"])] if m["one_time_prekey"] else []
                validate_bundle(H(m["IK"]), m["spk_id"], H(m["spk"]), H(m["spk_sig"]), opk)
                if m["name"] in to.pins and to.pins[m["name"]] != H(m["IK"]):
                    raise Refused("E2e.IdentityMismatch")
                if m["name"] not in to.peers:  # §11.3: a session with a new name needs room
                    to.make_room(m["name"])
                to.bundle = m
            except Refused as r:
                failed = r.cls
        check("send_failed", case.get("send_failed"), failed and {"peer": m["name"], "error": failed})
        return None
    if t == "E2eSend":
        sender = parties[case["from"]]
        env = decode_envelope(H(m["envelope"]))
        check("e2e.envelope", case["e2e"]["envelope"], env)
        sender_side(sender, m["to"], env, case, draw_by_public, run)
        return None
    if t == "E2eDeliver":
        to = parties[case["to"]]
        try:
            env = decode_envelope(H(m["envelope"]))
            check("e2e.envelope", case["e2e"]["envelope"], env)
            # §15.3: the id is not checked (§5.3); replays are refused by the sessions (§11.3, §12.5).
            pt = receiver_side(to, m["from"], env, parties)
            check("e2e.plaintext", case["e2e"]["plaintext"], pt.hex())
        except Refused as r:
            return r.cls
        return None
    if t == "Deliver":
        to = parties[case["to"]]
        if to.identity is not None:  # §15.3: an e2e client accepts no hop message
            return "Protocol.Unexpected"
        try:
            to.accept_hop(m["from"], m["id"])
        except Refused as r:
            return r.cls
    return None


def sender_side(sender, to_name, env, case, draw_by_public, run):
    """The sender's keys for an E2eSend (§11.1, §12.3): from its state, the RNG draws and the
    bundle it fetched. Checks the model's key opens the envelope."""
    h = env["header"]
    header = encode_header(H(h["dh"]), h["pn"], h["n"])
    peer = sender.peers.get(to_name)
    held = sender.held.pop((H(h["dh"]), h["n"]), None)  # §17.2 SubmitHeld: encrypted at its Hold
    if held is None and (peer is None or peer.current is None):
        b = sender.bundle
        check("bundle name", b["name"], to_name)
        opk = [H(b["one_time_prekey"]["key"])] if b["one_time_prekey"] else []
        validate_bundle(H(b["IK"]), b["spk_id"], H(b["spk"]), H(b["spk_sig"]), opk)
        ik_b = H(b["IK"])
        if to_name in sender.pins and sender.pins[to_name] != ik_b:
            raise Refused("E2e.IdentityMismatch")
        ek = draw_by_public[H(env["EK"])]
        E = "E2e.Crypto.NonContributory"
        dhs = [dh(sender.ik, H(b["spk"]), E), dh(ek, ik_b[:32], E), dh(ek, H(b["spk"]), E)]
        if opk:
            dhs.append(dh(ek, opk[0], E))
        ad = x3dh_ad(sender.identity, sender.name, ik_b, to_name)
        sk = x3dh_sk(dhs)
        # the run's sessions: `x3dh`, then `later_sessions`, each named by its base key EK_A
        x = next(x for x in [run["x3dh"], *run.get("later_sessions", [])] if x["EK_A"]["public"] == env["EK"])
        check("x3dh.SK", x["SK"], sk.hex())
        check("x3dh.AD", x["AD"], ad.hex())
        check("x3dh.dh", list(x["dh"].values()), [d.hex() for d in dhs])
        prekey = {
            "IK": sender.identity.hex(), "id_sig": sender.id_sig.hex(), "EK": x25519_public(ek).hex(),
            "spk_id": b["spk_id"], "opk_id": b["one_time_prekey"]["id"] if opk else None,
        }
        sender.make_room(to_name)
        sender.start_session(to_name, Session(Ratchet(sk, ad, dhr=H(b["spk"])), x25519_public(ek), ik_b, prekey))
    s = held or sender.peers[to_name].current
    # §11.3, §13: an initiator sends prekey messages, all with the session's prekey header, until it has
    # decrypted a message from the peer (one encrypted before that may be submitted after it).
    if env["type"] == "PrekeyMessage":
        check("prekey header", s.prekey, {k: env[k] for k in ("IK", "id_sig", "EK", "spk_id", "opk_id")})
    elif not s.answered:
        raise Mismatch("a plain ratchet message from an initiator that has not heard back")
    r = s.ratchet
    dh_pub = H(h["dh"])
    if r.dhs is None or x25519_public(r.dhs) != dh_pub:
        # §12.3: CKs is none, the ratchet turns with the next drawn key.
        check("a new chain only after receiving", r.cks, None)
        r.dhs = draw_by_public[dh_pub]
        dh_out = dh(r.dhs, r.dhr, "E2e.Ratchet.Crypto.NonContributory")
        before = r.rk
        r.rk, r.cks = kdf_rk(r.rk, dh_out)
        chain = run["ratchet_chains"][case["e2e"]["chain"]]
        check("chain owner", chain["owner"], sender.name)
        check("chain ratchet_key", chain["ratchet_key"]["private"], r.dhs.hex())
        check("chain peer_ratchet_key", chain["peer_ratchet_key"], r.dhr.hex())
        check("chain dh_out", chain["dh_out"], dh_out.hex())
        check("chain RK_before", chain["RK_before"], before.hex())
        check("chain RK_after", chain["RK_after"], r.rk.hex())
        check("chain CK_0", chain["CK_0"], r.cks.hex())
        sender.chains_by_dh[dh_pub] = r.cks
    check("header pn", h["pn"], r.pn)
    ck = sender.chains_by_dh[dh_pub]
    for _ in range(h["n"]):
        ck = kdf_ck(ck)[1]
    mk = kdf_ck(ck)[0]
    r.ns = max(r.ns, h["n"] + 1)
    if held is None:  # a held message's activity was its encryption, at the Hold
        sender.touch(to_name)
    key, nonce = message_keys(mk)
    e = case["e2e"]
    check("e2e.CK", e["CK"], ck.hex())
    check("e2e.MK", e["MK"], mk.hex())
    check("e2e.aead_key", e["aead_key"], key.hex())
    check("e2e.aead_nonce", e["aead_nonce"], nonce.hex())
    check("e2e.aead_ad", e["aead_ad"], (r.ad + header).hex())
    pt = aead_open(key, nonce, r.ad + header, H(env["ciphertext"]), "E2e.Ratchet.DecryptFailed")
    check("e2e.plaintext", e["plaintext"], pt.hex())


def receiver_side(to, from_name, env, parties):
    """§11.2-§11.3 and §12.4-§12.5 for the recipient; transactional. Returns the plaintext."""
    h = env["header"]
    header = encode_header(H(h["dh"]), h["pn"], h["n"])
    ct = H(env["ciphertext"])
    budget = Budget()  # §12.5: one per envelope, over all sessions tried
    peer = to.peers.get(from_name)

    skipped_before = peer.skipped_count() if peer is not None else 0

    def opened(session, pt, new):
        session.ratchet = new
        session.answered = True  # it heard back in this session
        peer.promote(session)
        to.touch(from_name, skipped_before)
        return pt

    if env["type"] == "PrekeyMessage":
        ik_a, ek = H(env["IK"]), H(env["EK"])
        if from_name in to.pins and to.pins[from_name] != ik_a:  # §11.3, §14.2: before rules 1-3
            raise Refused("E2e.IdentityMismatch")
        if peer is not None:
            for s in peer.sessions():  # rule 1: a kept session with base key EK_A and identity IK_A
                if s.base_key == ek and s.identity == ik_a:
                    pt, new, _ = s.ratchet.decrypt(header, ct, budget)
                    return opened(s, pt, new)
            if ek in peer.retired:  # rule 2
                raise Refused("E2e.ReplayedPrekeyMessage")
        # rule 3: a new session (§11.2)
        spk_id, opk_id = env["spk_id"], env["opk_id"]
        sk, ad, spk = x3dh_respond(to.ik, to.identity, to.name, to.signed, to.one_time, from_name, ik_a,
                                   H(env["id_sig"]), ek, spk_id, opk_id, to.pins.get(from_name))
        pt, new, _ = Ratchet(sk, ad, dhs=spk).decrypt(header, ct, budget)
        to.make_room(from_name)  # only once the first message opened
        if opk_id is not None:
            del to.one_time[opk_id]  # used at most once (§11.2)
        to.start_session(from_name, Session(new, ek, ik_a), skipped_before)
        return pt
    if peer is None or not peer.sessions():
        raise Refused("E2e.NoSession")
    first = None
    for s in peer.sessions():  # the current session, then the archived ones, newest first
        try:
            pt, new, _ = s.ratchet.decrypt(header, ct, budget)
        except Refused as r:
            first = first or r  # the first session's error is what is reported
            continue
        return opened(s, pt, new)
    raise first


# ---------------------------------------------------------------------------------------------


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "vectors"
    files = [
        ("key_schedule.json", verify_key_schedule),
        ("wire.json", verify_wire),
        ("channel.json", verify_channel),
        ("bundles.json", verify_bundle),
        ("hop_transcript.json", None),
        ("e2e_transcript.json", None),
    ]
    total_pass = total_fail = 0
    for name, fn in files:
        results = []
        try:
            data = json.loads((root / name).read_text())
            if data.get("version") != 1 or data.get("file") != name[:-5]:
                raise Mismatch("version or file name")
            if fn is None:
                for run in data["runs"]:
                    verify_transcript_run(run, results)
            else:
                for case in data["cases"]:
                    try:
                        fn(case)
                        results.append((case["id"], None))
                    except (Mismatch, Refused, KeyError, ValueError, TypeError) as e:
                        results.append((case["id"], f"{type(e).__name__}: {e}"))
        except (OSError, ValueError, Mismatch) as e:
            results.append(("(file)", str(e)))
        passed = sum(1 for _, err in results if err is None)
        failed = len(results) - passed
        print(f"{name}: {passed} passed, {failed} failed")
        for cid, err in results:
            if err is not None:
                print(f"  FAILED {cid}: {err}")
        total_pass += passed
        total_fail += failed
    print(f"verify.py: {total_pass} passed, {total_fail} failed")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
