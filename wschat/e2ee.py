"""End-to-end encryption of private messages between accounts: the construction. NO I/O.

One module owns the cryptography both ends of the wire agree on (PROTOCOL.md "End-to-end
encrypted private messages"); the web page does the same with WebCrypto, the terminal client and
the tests use this module, and the server uses only `key_id` and `load_public` (it checks the
keys it publishes; it never holds a private key nor decrypts).

- A device key is an ECDH P-256 key pair; on the wire its public half is the base64 of the
  65-byte uncompressed point (WebCrypto's "raw" export). Its `key_id` is the first 16 hex digits
  of the point's SHA-256.
- For each device a message is for: the ECDH shared secret of the sender's device key and that
  device's key -> HKDF-SHA-256 (empty salt, info `wschat-e2ee-v1|<from key id>|<to key id>`, 32
  bytes) -> AES-256-GCM with a random 96-bit IV and the associated data
  `wschat-e2ee-v1\\n<sender>\\n<recipient>\\n<mid>` (the accounts' names as the server spells
  them, and the message's own id), so a copy cannot be moved to another conversation, another
  sender or another message id without failing to decrypt.
- The safety number of a conversation: both accounts' fingerprints (SHA-256 of their sorted
  device keys), sorted, hashed with SHA-512; 60 digits in 12 groups of 5. Both ends compute the
  same number from the same keys, whoever computes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
LABEL = "wschat-e2ee-v1"
IV_BYTES = 12
POINT_BYTES = 65  # an uncompressed P-256 point: 0x04, x, y
KEY_ID_CHARS = 16
MAX_MID = 64


class Undecryptable(Exception):
    """A copy that cannot be decrypted (tampered, wrong associated data, not for this device)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def key_id(public: str) -> str:
    """The id of a device's public key (its base64 form): the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(unb64(public)).hexdigest()[:KEY_ID_CHARS]


def load_public(public: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its base64 raw point; ValueError if it is not one."""
    raw = unb64(public)
    if len(raw) != POINT_BYTES or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # checks it is on the curve


def public_text(key: ec.EllipticCurvePrivateKey) -> str:
    point = serialization.PublicFormat.UncompressedPoint
    return b64(key.public_key().public_bytes(serialization.Encoding.X962, point))


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def associated_data(sender: str, recipient: str, mid: str) -> bytes:
    return f"{LABEL}\n{sender}\n{recipient}\n{mid}".encode()


def _aes_key(own: ec.EllipticCurvePrivateKey, peer: str, from_id: str, to_id: str) -> bytes:
    shared = own.exchange(ec.ECDH(), load_public(peer))
    info = f"{LABEL}|{from_id}|{to_id}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=info).derive(shared)


@dataclass(frozen=True, slots=True)
class Device:
    """A device's published public key (a `keys` frame's entry)."""

    id: str
    key: str
    label: str = ""


def encrypt(
    own: ec.EllipticCurvePrivateKey,
    sender: str,
    recipient: str,
    mid: str,
    text: str,
    devices: list[Device],
    iv: Any = os.urandom,
) -> dict[str, Any]:
    """The `e2ee` object of a `private`: `text` encrypted for each of `devices`."""
    own_pub = public_text(own)
    own_id = key_id(own_pub)
    ad = associated_data(sender, recipient, mid)
    copies = {}
    for dev in devices:
        nonce = iv(IV_BYTES)
        sealed = AESGCM(_aes_key(own, dev.key, own_id, dev.id)).encrypt(nonce, text.encode(), ad)
        copies[dev.id] = {"iv": b64(nonce), "ct": b64(sealed)}
    return {"v": VERSION, "mid": mid, "from_key": own_id, "from_pub": own_pub, "copies": copies}


def decrypt(own: ec.EllipticCurvePrivateKey, sender: str, recipient: str, envelope: Any) -> str:
    """The text of this device's copy; Undecryptable if there is none or it does not open."""
    if not isinstance(envelope, dict) or envelope.get("v") != VERSION:
        raise Undecryptable("not a version-1 encrypted message")
    own_id = key_id(public_text(own))
    copy = envelope.get("copies", {}).get(own_id) if isinstance(envelope.get("copies"), dict) else None
    if not isinstance(copy, dict):
        raise Undecryptable("it was not encrypted for this device")
    try:
        from_pub = envelope.get("from_pub")
        if not isinstance(from_pub, str) or key_id(from_pub) != envelope.get("from_key"):
            raise Undecryptable("the sender's key does not match its id")
        mid = envelope.get("mid")
        if not isinstance(mid, str):
            raise Undecryptable("it has no message id")
        key = _aes_key(own, from_pub, key_id(from_pub), own_id)
        nonce = unb64(copy.get("iv"))
        if len(nonce) != IV_BYTES:
            raise Undecryptable("its IV is not 96 bits")
        plain = AESGCM(key).decrypt(nonce, unb64(copy.get("ct")), associated_data(sender, recipient, mid))
        return plain.decode("utf-8")
    except (InvalidTag, ValueError, UnicodeDecodeError) as exc:
        raise Undecryptable("it was tampered with or is not for this conversation") from exc


def fingerprint(public_keys: list[str]) -> bytes:
    """An account's fingerprint: SHA-256 of its devices' raw public keys, sorted."""
    return hashlib.sha256(b"".join(sorted(unb64(k) for k in public_keys))).digest()


def safety_number(mine: list[str], theirs: list[str]) -> str:
    """60 digits in 12 groups of 5, the same on both ends (the fingerprints are sorted)."""
    a, b = sorted((fingerprint(mine), fingerprint(theirs)))
    digest = hashlib.sha512(f"{LABEL}-safety".encode() + a + b).digest()
    groups = [f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 60, 5)]
    return " ".join(groups)


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_pem(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not a P-256 private key")
    return key
