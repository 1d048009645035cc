#!/usr/bin/env python3
"""A second client implementation of e2e-ref, written from spec/SPEC.md, speaking the shim protocol
of spec/INTEROP.md on stdin/stdout (one JSON object per line) and the wire protocol over TCP to the
reference relay.

It reuses the independent verifier's primitives (spec/verify/verify.py, written from SPEC.md alone):
the codec (§3), Noise IK (§4), bundle validation (§10.3), X3DH (§11), the Double Ratchet with its
receiving algorithm (§12), envelopes (§13), safety numbers (§14). It shares no code with the Rust
reference. What it adds is a client's state and its driver: registration and key confirmation (§5.1),
hop ids and the replay window (§5.3), bundles (§10.2, §15), the initiator's side of §11.1.

State: the whole client (channel static key, identity, prekeys, sessions, ratchets, replay windows,
message counter, pins, waiting messages) is a Python pickle in the `state` file, rewritten atomically
(temporary file 0600, fsync, rename, fsync of the directory) after every change and before any frame
that change produced is written (the rule of SPEC.md §18.5; not §18's byte format).

Not implemented: prekey rotation and replenishment (`PrekeysLow` is ignored), peer eviction beyond
what verify.Party does, archived-session limits beyond verify.Peer.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "verify"))
import verify as v  # noqa: E402

PROLOGUE = b"e2e-ref/channel/v1"
ONE_TIME_PREKEYS_PER_UPLOAD = 10
LINK_INIT, LINK_RESP, LINK_TRANSPORT = 0x01, 0x02, 0x03


def emit(obj: dict):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def link_frame(kind: int, noise: bytes) -> bytes:
    return bytes([1, kind]) + len(noise).to_bytes(4, "big") + noise


def err_class(r: v.Refused) -> str:
    return r.cls.split(".")[0]


class ShimError(Exception):
    def __init__(self, cls: str, detail: str):
        super().__init__(detail)
        self.cls, self.detail = cls, detail


class State:
    """Everything the client keeps; pickled whole."""

    def __init__(self, name: str, server_key: bytes, e2e: bool):
        self.name, self.server_key, self.e2e = name, server_key, e2e
        self.static = os.urandom(32)
        self.last_id = 0
        self.windows = {}  # hop: sender -> verify.ReplayWindow
        self.party = None
        self.pending = {}  # e2e: peer -> [text bytes] waiting for its bundle
        if e2e:
            p = object.__new__(v.Party)
            p.name, p.static = name, self.static
            p.ik, p.isk = os.urandom(32), os.urandom(32)
            p.identity = v.identity_public(p.ik, p.isk)
            p.id_sig = v.identity_signature(p.isk, p.identity[:32])
            p.signed, p.one_time = {}, {}
            p.windows, p.peers, p.pins, p.awaiting = {}, {}, {}, set()
            p.clock, p.bundle, p.chains_by_dh = 0, None, {}
            self.party = p
            # §10.2: one id counter from 1; the signed prekey (id 1), then 10 one-time prekeys.
            self.spk_id = 1
            p.signed[1] = os.urandom(32)
            self.spk_sig = v.Ed25519PrivateKey.from_private_bytes(p.isk).sign(
                v.signed_prekey_message(p.identity[:32], 1, v.x25519_public(p.signed[1])))
            for i in range(2, 2 + ONE_TIME_PREKEYS_PER_UPLOAD):
                p.one_time[i] = os.urandom(32)
            self.uploaded = set()


class Client:
    def __init__(self):
        self.st: State | None = None
        self.path = None
        self.server = None
        self.sock = None
        self.gen = 0
        self.link = None  # None | ("handshake", sym, e) | ("online", send Direction, recv Direction)
        self.sealed = []
        self.inbox = queue.Queue()

    # --- state ---------------------------------------------------------------------------------

    def save(self):
        tmp = self.path + ".tmp"
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(self.st, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)
        dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # --- the link ------------------------------------------------------------------------------

    def reader(self, sock, gen):
        def exact(n):
            b = b""
            while len(b) < n:
                chunk = sock.recv(n - len(b))
                if not chunk:
                    return None
                b += chunk
            return b

        try:
            while True:
                head = exact(6)
                if head is None:
                    break
                body = exact(int.from_bytes(head[2:6], "big"))
                if body is None:
                    break
                self.inbox.put(("frame", gen, head + body))
        except OSError:
            pass
        self.inbox.put(("closed", gen, "the relay closed the connection"))

    def write(self, frames):
        for f in frames:
            self.sock.sendall(f)

    def seal(self, m: dict) -> bytes:
        if not self.link or self.link[0] != "online":
            raise ShimError("Misuse", "NotConnected")
        return link_frame(LINK_TRANSPORT, self.link[1].seal(v.encode_message(m)))

    def close(self, reason: str):
        if self.sock is not None:
            try:
                # shutdown first: close() alone does not send FIN while the reader thread is in recv.
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock, self.link = None, None
            self.gen += 1
            emit({"event": "disconnected", "reason": reason})

    def next_id(self) -> int:
        self.st.last_id += 1
        return self.st.last_id

    def upload(self) -> dict:
        st, p = self.st, self.st.party
        opks = [{"id": i, "key": v.x25519_public(k).hex()} for i, k in sorted(p.one_time.items()) if i not in st.uploaded]
        st.uploaded |= {o["id"] for o in opks}
        return {"type": "UploadBundle", "IK": p.identity.hex(), "spk_id": st.spk_id,
                "spk": v.x25519_public(p.signed[st.spk_id]).hex(), "spk_sig": st.spk_sig.hex(), "one_time_prekeys": opks}

    def frame(self, data: bytes):
        kind, noise = v.decode_frame(data, "link")
        out = []
        if self.link and self.link[0] == "handshake" and kind == LINK_RESP:
            _, sym, e = self.link
            payload = v.read_message_2(sym, self.st.static, e, noise)
            m = v.decode_message(payload)
            if m["type"] == "Refused":
                emit({"event": "refused", "reason": m["reason"]})
                self.close("refused")
                return
            if m["type"] != "Welcome" or m["name"] != self.st.name:
                raise v.Refused("Protocol.WrongName")
            k1, k2 = sym.split()
            self.link = ("online", v.Direction(k1), v.Direction(k2))
            out.append(self.seal({"type": "Ready"}))
            for name in self.st.pending:  # §15.3: ask again after every (re)connection
                out.append(self.seal({"type": "FetchBundle", "name": name}))
            emit({"event": "connected"})
            if self.st.e2e:
                out.append(self.seal(self.upload()))
        elif self.link and self.link[0] == "online" and kind == LINK_TRANSPORT:
            m = v.decode_message(self.link[2].open(noise))
            try:
                out += self.message(m)
            except v.Refused as r:  # authenticated, content refused: only the channel advanced (§7.2)
                emit({"event": "dropped", "error": err_class(r), "detail": r.cls})
        else:
            raise v.Refused("Protocol.Unexpected")
        self.save()
        self.write(out)

    def message(self, m: dict):
        st, t, out = self.st, m["type"], []
        if t == "Refused":
            emit({"event": "refused", "reason": m["reason"]})
            self.close("refused")
        elif t == "Deliver":
            if st.e2e:
                raise v.Refused("Protocol.Unexpected")
            w = st.windows.get(m["from"], v.ReplayWindow())
            w.check(m["id"])
            w.accept(m["id"])
            st.windows[m["from"]] = w
            emit({"event": "received", "from": m["from"], "id": m["id"],
                  "text": bytes.fromhex(m["body"]).decode("utf-8", "replace"), "protection": "hop"})
        elif t == "Ack":
            emit({"event": "acked", "id": m["id"], "status": m["status"]})
        elif t == "Reject":
            emit({"event": "rejected", "id": m["id"], "reason": m["reason"]})
        elif t == "BundleStored":
            emit({"event": "bundle_stored", "one_time_prekeys": m["one_time_prekeys"]})
        elif t == "BundleRefused":
            emit({"event": "bundle_refused", "detail": m["reason"]})
        elif t == "PrekeysLow":
            pass
        elif t in ("Bundle", "NoBundle"):
            out += self.bundle(m)
        elif t == "E2eDeliver":
            out += self.deliver(m)
        else:
            raise v.Refused("Protocol.Unexpected")
        return out

    def bundle(self, m: dict):
        st, p, name = self.st, self.st.party, m["name"]
        if p is None or name not in st.pending:
            raise v.Refused("Protocol.Unexpected")
        texts = st.pending.pop(name)
        peer = p.peers.get(name)
        if peer is None or peer.current is None:
            try:
                if m["type"] == "NoBundle":
                    raise v.Refused("E2e.NoBundle")
                ik_b, spk = bytes.fromhex(m["IK"]), bytes.fromhex(m["spk"])
                opk = bytes.fromhex(m["one_time_prekey"]["key"]) if m["one_time_prekey"] else None
                v.validate_bundle(ik_b, m["spk_id"], spk, bytes.fromhex(m["spk_sig"]), [opk] if opk else [])
                if name in p.pins and p.pins[name] != ik_b:
                    raise v.Refused("E2e.IdentityMismatch")
                ek = os.urandom(32)
                E = "E2e.Crypto.NonContributory"
                dhs = [v.dh(p.ik, spk, E), v.dh(ek, ik_b[:32], E), v.dh(ek, spk, E)]
                if opk:
                    dhs.append(v.dh(ek, opk, E))
                sk, ad = v.x3dh_sk(dhs), v.x3dh_ad(p.identity, p.name, ik_b, name)
            except v.Refused as r:
                emit({"event": "send_failed", "peer": name, "error": "E2e", "detail": r.cls, "discarded": len(texts)})
                return []
            prekey = {"IK": p.identity.hex(), "id_sig": p.id_sig.hex(), "EK": v.x25519_public(ek).hex(),
                      "spk_id": m["spk_id"], "opk_id": m["one_time_prekey"]["id"] if opk else None}
            p.make_room(name)
            p.start_session(name, v.Session(v.Ratchet(sk, ad, dhr=spk), v.x25519_public(ek), ik_b, prekey))
            emit({"event": "session_started", "peer": name, "one_time_prekey": opk is not None})
        out = []
        for text in texts:
            i = self.next_id()
            out.append(self.seal({"type": "E2eSend", "id": i, "to": name, "envelope": self.encrypt(name, text).hex()}))
            emit({"event": "sent", "to": name, "id": i})
        return out

    def encrypt(self, name: str, text: bytes) -> bytes:
        p = self.st.party
        s = p.peers[name].current
        header, ct, _, _ = s.ratchet.encrypt_with(os.urandom(32), text)
        h = {"dh": header[:32].hex(), "pn": int.from_bytes(header[32:36], "big"), "n": int.from_bytes(header[36:], "big")}
        if not s.answered:
            env = {"type": "PrekeyMessage", **s.prekey, "header": h, "ciphertext": ct.hex()}
        else:
            env = {"type": "RatchetMessage", "header": h, "ciphertext": ct.hex()}
        p.touch(name)
        return v.encode_envelope(env)

    def deliver(self, m: dict):
        p, frm = self.st.party, m["from"]
        if p is None:
            raise v.Refused("Protocol.Unexpected")
        env = v.decode_envelope(bytes.fromhex(m["envelope"]))
        before = p.peers.get(frm).current if frm in p.peers else None
        # receiver_side works on copies and commits only on success (SPEC.md §7.2).
        snapshot = pickle.dumps(p)
        try:
            pt = v.receiver_side(p, frm, env, None)
        except v.Refused:
            self.st.party = pickle.loads(snapshot)
            raise
        after = p.peers[frm].current
        if env["type"] == "PrekeyMessage" and after is not before and after.prekey is None and after.base_key == bytes.fromhex(env["EK"]):
            emit({"event": "session_started", "peer": frm, "one_time_prekey": env["opk_id"] is not None})
        emit({"event": "received", "from": frm, "id": m["id"], "text": pt.decode("utf-8", "replace"), "protection": "e2e"})
        return []

    # --- commands ------------------------------------------------------------------------------

    def command(self, c: dict):
        cmd = c.get("cmd")
        if cmd == "start":
            if self.st is not None:
                raise ShimError("Shim", "already started")
            self.path, host_port = c["state"], c["server"]
            host, port = host_port.rsplit(":", 1)
            self.server = (host, int(port))
            key = bytes.fromhex(c["server_key"])
            if os.path.exists(self.path):
                with open(self.path, "rb") as f:
                    st = pickle.load(f)
                if st.name != c["name"] or st.server_key != key or st.e2e != bool(c.get("e2e")):
                    raise ShimError("Shim", "the state file is another client's")
                self.st = st
            else:
                self.st = State(c["name"], key, bool(c.get("e2e")))
                self.save()
            return {"identity": self.st.party.identity.hex() if self.st.party else None}
        if self.st is None:
            raise ShimError("Shim", "no start yet")
        st, p = self.st, self.st.party
        if cmd == "connect":
            if self.sock is not None:
                raise ShimError("Misuse", "AlreadyConnected")
            sock = socket.create_connection(self.server, timeout=10)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
            self.gen += 1
            threading.Thread(target=self.reader, args=(sock, self.gen), daemon=True).start()
            e = os.urandom(32)
            sym = v.Symmetric(PROLOGUE, st.server_key)
            m1 = v.write_message_1(sym, st.static, e, st.server_key, v.encode_message({"type": "Register", "name": st.name}))
            self.link = ("handshake", sym, e)
            self.write([link_frame(LINK_INIT, m1)])
            return {}
        if cmd == "disconnect":
            self.close("asked")
            return {}
        if cmd == "send":
            to, text = c["to"], c["text"].encode()
            if not st.e2e:
                frame = self.seal({"type": "Send", "id": st.last_id + 1, "to": to, "body": text.hex()})
                i = self.next_id()
                self.save()
                self.write([frame])
                return {"id": i}
            if to == st.name:
                raise ShimError("Misuse", "SendToSelf")
            if to in p.peers and p.peers[to].current is not None:
                if not self.link or self.link[0] != "online":
                    raise ShimError("Misuse", "NotConnected")
                i = self.next_id()
                frame = self.seal({"type": "E2eSend", "id": i, "to": to, "envelope": self.encrypt(to, text).hex()})
                emit({"event": "sent", "to": to, "id": i})
                self.save()
                self.write([frame])
                return {"id": i}
            first = to not in st.pending
            frames = [self.seal({"type": "FetchBundle", "name": to})] if first else []
            st.pending.setdefault(to, []).append(text)
            self.save()
            self.write(frames)
            return {"id": None}
        if cmd == "seal":
            to = c["to"]
            if p is None or to not in p.peers or p.peers[to].current is None:
                raise ShimError("E2e", "NoSession")
            env = self.encrypt(to, c["text"].encode())
            self.save()
            self.sealed.append((to, env))
            return {"handle": len(self.sealed) - 1}
        if cmd == "submit":
            to, env = self.sealed[c["handle"]]
            i = self.next_id()
            frame = self.seal({"type": "E2eSend", "id": i, "to": to, "envelope": env.hex()})
            self.save()
            self.write([frame])
            return {"id": i}
        if cmd in ("safety_number", "verify"):
            peer = c["peer"]
            s = p.peers[peer].current if p is not None and peer in p.peers else None
            if s is None:
                if cmd == "verify":
                    return {"verified": False}
                raise ShimError("E2e", "NoSession")
            number = v.safety_number((p.identity, st.name), (s.identity, peer))
            if cmd == "safety_number":
                return {"number": number}
            typed = "".join(ch for ch in c["number"] if ch.isdigit())
            ok = typed == number
            if ok:
                p.pins[peer] = s.identity
                self.save()
            return {"verified": ok}
        if cmd == "pin":
            p.pins[c["peer"]] = bytes.fromhex(c["identity"])
            self.save()
            return {}
        raise ShimError("Shim", f"unknown command {cmd!r}")

    def run(self):
        def stdin_reader():
            for line in sys.stdin:
                self.inbox.put(("line", None, line))
            self.inbox.put(("eof", None, None))

        threading.Thread(target=stdin_reader, daemon=True).start()
        while True:
            kind, gen, data = self.inbox.get()
            if kind == "eof":
                return
            if kind in ("frame", "closed"):
                if gen != self.gen or self.sock is None:
                    continue  # from a connection closed meanwhile
                if kind == "closed":
                    self.close(data)
                    continue
                try:
                    self.frame(data)
                except v.Refused as r:  # did not authenticate: the link cannot go on (§7.2)
                    self.close(f"{r.cls}")
                continue
            line = data.strip()
            if not line:
                continue
            try:
                c = json.loads(line)
                if c.get("cmd") == "quit":
                    emit({"ok": True})
                    return
                answer = self.command(c)
                emit({**answer, "ok": True})
            except ShimError as e:
                emit({"ok": False, "error": e.cls, "detail": e.detail})
            except v.Refused as r:
                emit({"ok": False, "error": err_class(r), "detail": r.cls})
            except (KeyError, ValueError, TypeError, IndexError) as e:
                emit({"ok": False, "error": "Shim", "detail": repr(e)})
            except OSError as e:
                emit({"ok": False, "error": "Io", "detail": str(e)})


if __name__ == "__main__":
    Client().run()
