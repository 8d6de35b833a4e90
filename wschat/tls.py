"""TLS for the server: load a certificate and key, or make a self-signed pair on first start.

`server_context()` turns --certfile/--keyfile into an `ssl.SSLContext`; `self_signed()` creates
(once) and reuses a certificate for this host's names and addresses, kept next to the database.
Problems raise `TLSSetupError` whose text is one plain sentence for the person running the server.
The `cryptography` library is imported only to create a certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Any

CERT_NAME, KEY_NAME = "cert.pem", "key.pem"
VALID_DAYS = 825  # the longest validity Apple platforms accept for a TLS server certificate


class TLSSetupError(Exception):
    """TLS cannot be set up; str(self) is one sentence saying which file and what to do."""


def read_file(path: str, what: str) -> bytes:
    """The bytes of a file the user named, or TLSSetupError saying plainly what is wrong."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TLSSetupError(f"The {what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise TLSSetupError(f"The {what} file {path} is a folder, not a file.") from None
    except PermissionError:
        raise TLSSetupError(f"The {what} file {path} cannot be read (permission denied).") from None
    except OSError as exc:
        raise TLSSetupError(f"The {what} file {path} cannot be read ({exc.strerror or exc}).") from None


def server_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server context for `certfile` (PEM, chain allowed) and `keyfile` (PEM, no passphrase).

    Without `keyfile` the key is expected in `certfile` too.
    """
    cert = read_file(certfile, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise TLSSetupError(f"The certificate file {certfile} holds no PEM certificate.")
    key = read_file(keyfile, "key") if keyfile else cert
    if b"PRIVATE KEY-----" not in key:
        where = keyfile or certfile
        raise TLSSetupError(f"The key file {where} holds no PEM private key; give it with --keyfile.")

    def no_passphrase() -> str:
        raise TLSSetupError(
            f"The key in {keyfile or certfile} is protected by a passphrase; the server cannot ask for it: "
            "write an unprotected copy (openssl pkey -in key.pem -out plain-key.pem) and use that."
        )

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile, keyfile, password=no_passphrase)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSSetupError(
                f"The key in {keyfile or certfile} does not belong to the certificate in {certfile}."
            ) from None
        raise TLSSetupError(
            f"The certificate {certfile} or key {keyfile or certfile} cannot be used ({exc.reason or exc})."
        ) from None
    return ctx


def fingerprint(certfile: str) -> str:
    """SHA-256 of the (first) certificate, colon-separated upper-case hex as browsers show it."""
    pem = read_file(certfile, "certificate").decode("ascii", "replace")
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[start:end])).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def self_signed(folder: str, names: list[str], addresses: list[str]) -> tuple[str, str, list[str]]:
    """Return (certfile, keyfile, notes) for a self-signed certificate kept in `folder`.

    Made on first use for `names` (DNS names) and `addresses` (IP addresses), then reused, so
    its fingerprint stays the same for the clients that trusted it. A new one is made only when
    it has expired or is about to. `notes` are sentences for the banner (created, or names and
    addresses the kept certificate does not cover).
    """
    cert_path, key_path = os.path.join(folder, CERT_NAME), os.path.join(folder, KEY_NAME)
    have = [os.path.exists(p) for p in (cert_path, key_path)]
    if have == [True, False] or have == [False, True]:
        present, absent = (cert_path, key_path) if have[0] else (key_path, cert_path)
        raise TLSSetupError(
            f"{present} exists but {absent} does not; delete {present} to let the server make a new pair."
        )
    if all(have):
        server_context(cert_path, key_path)  # readable and matching, or a sentence
        missing, expiring = _coverage(cert_path, names, addresses)
        if not expiring:
            notes = []
            if missing:
                notes.append(
                    f"The certificate in {cert_path} does not cover {', '.join(missing)}; "
                    "delete cert.pem and key.pem to make a new one (its fingerprint will change)."
                )
            return cert_path, key_path, notes
    _create(cert_path, key_path, names, addresses)
    return cert_path, key_path, [f"Created a self-signed certificate in {cert_path}."]


def _coverage(cert_path: str, names: list[str], addresses: list[str]) -> tuple[list[str], bool]:
    """(names and addresses the certificate lacks, whether it expires within a day)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
        have |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        have = set()
    wanted = [n.lower() for n in names] + [str(ipaddress.ip_address(a)) for a in addresses]
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return [w for w in wanted if w not in have], cert.not_valid_after_utc < soon


def _create(cert_path: str, key_path: str, names: list[str], addresses: list[str]) -> None:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise TLSSetupError(
            "--self-signed needs the cryptography package: pip install -r requirements.txt"
        ) from None
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _certificate(key, names, addresses)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    folder = os.path.dirname(cert_path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(key_path)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from the start
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        Path(cert_path).write_bytes(cert_pem)
    except OSError as exc:
        raise TLSSetupError(
            f"Cannot write the certificate into {folder} ({exc.strerror or exc}); "
            "choose another folder with --db, or give --certfile and --keyfile."
        ) from None


def _certificate(key: Any, names: list[str], addresses: list[str]) -> bytes:
    """A self-signed server certificate (PEM) for `key`, valid for these names and addresses."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "wschat"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wschat self-signed"),
        ]
    )
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(names)]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addresses)]
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
