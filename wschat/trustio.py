"""The terminal client's TLS trust I/O: certificates, the known-servers file, pinned connections.

What counts as trusted, and every sentence about it, is decided in the pure `wschat.trust`; this
module does the reading and writing it needs:

- `Trust`: what this client trusts a server's certificate by (nothing for ws://, --cafile, a
  public authority, or a pinned fingerprint) and the `ssl` context for it;
- `pinned_context()`: a context that accepts exactly one certificate, checked inside the TLS
  handshake (`PinMismatch`), before anything is sent;
- `cafile_context()`: --cafile, the server's own certificate accepted as a trust anchor;
- `fetch_fingerprint()`: the certificate a server presents, sending nothing after the handshake;
- `read_known()` / `remember()`: the known-servers file, replaced atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection

from wschat.address import Address
from wschat.tls import TLSSetupError, read_file
from wschat.trust import (
    KnownServersError,
    default_known_path,
    fingerprint,
    parse_known,
    render_known,
    server_key,
)


class TrustSetupError(ValueError):
    """--cafile or the address cannot be used as given; str(self) is one sentence."""


class NotTrusted(Exception):
    """The server's certificate is not trusted: give up (str(self) says why) with this exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class PinMismatch(ssl.SSLError):
    """The server presented another certificate than the pinned one. Raised inside the TLS
    handshake, so asyncio fails the connection before anything is sent over it."""

    def __init__(self, presented: str) -> None:
        super().__init__(f"the certificate's SHA-256 fingerprint is {presented}, not the trusted one")
        self.presented = presented


class _PinnedSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is complete
        # The handshake is done but asyncio has not yet handed the connection to websockets,
        # so nothing (not even the HTTP upgrade request) has been sent: refuse here.
        context = self.context
        assert isinstance(context, PinnedContext)
        presented = fingerprint(self.getpeercert(binary_form=True) or b"")
        if presented != context.pin:
            raise PinMismatch(presented)


class PinnedContext(ssl.SSLContext):
    """Trusts exactly one certificate: the one whose SHA-256 fingerprint is `pin`.

    OpenSSL's chain and name checks are off (a self-signed certificate has no chain to check, and
    the user trusted this certificate for this address); the fingerprint check replaces them and
    runs at the end of every handshake (`sslobject_class`, the documented hook for this).
    """

    sslobject_class = _PinnedSSLObject
    pin = ""


def pinned_context(pin: str) -> PinnedContext:
    ctx = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.pin = pin
    return ctx


def cafile_context(path: str) -> ssl.SSLContext:
    """A context trusting only the certificate(s) in `path` (PEM, or one DER certificate).

    The server's own certificate is accepted as a trust anchor even when it is not a CA
    (partial chain), so `--cafile cert.pem` works for any server certificate; names are checked.
    """
    try:
        data = read_file(path, "--cafile")
    except TLSSetupError as exc:
        raise TrustSetupError(str(exc)) from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    not_cert = (
        f"The --cafile file {path} holds no certificate; give the server's certificate "
        "(cert.pem in its data folder) or the authority that signed it, in PEM or DER."
    )
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            ctx.load_verify_locations(cadata=data.decode("ascii", "replace"))
        elif b"-----BEGIN" in data:  # PEM, but a key or a request rather than a certificate
            raise TrustSetupError(not_cert)
        else:
            ctx.load_verify_locations(cadata=data)
    except (ssl.SSLError, ValueError):
        raise TrustSetupError(not_cert) from None
    return ctx


async def fetch_fingerprint(host: str, port: int, timeout: float = 10) -> str:
    """The fingerprint of the certificate a server presents; nothing is sent after the TLS handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only to read the certificate; it is trusted or not by the user
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        return fingerprint(sslobj.getpeercert(binary_form=True) or b"")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await writer.wait_closed()


def read_known(path: str) -> dict[str, str]:
    """The known-servers file (a missing file is an empty list); KnownServersError if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KnownServersError(f"The known servers file {path} cannot be read ({reason}).") from None
    return parse_known(text, path)


def remember(path: str, key: str, fp: str) -> None:
    """Add `key` -> `fp` to the known-servers file, keeping the other entries; replaced atomically,
    so a crash or a second client writing at the same time cannot leave half a file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    parse_known(text, path)  # never overwrite entries we could not read
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".known_servers.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render_known(text, key, fp, datetime.now(UTC).isoformat(timespec="seconds")))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Trust:
    """What this client trusts the server's certificate by: nothing (ws://), --cafile, a public
    authority, or a fingerprint pinned (remembered, or accepted by the user this session)."""

    def __init__(
        self,
        address: Address,
        known_path: str,
        cafile: str | None = None,
        ca_context: ssl.SSLContext | None = None,
    ) -> None:
        """Raises TrustSetupError (--cafile with ws://) or KnownServersError (the file is unusable)."""
        parts = urlsplit(address.url)
        self.secure = parts.scheme == "wss"
        self.host, self.port = parts.hostname or "", parts.port or 443
        self.key = server_key(address.display)
        self.cafile = cafile
        self.known_path = known_path
        self.ca_context = ca_context if cafile else None
        self.pin: str | None = None
        self._pinned: PinnedContext | None = None
        self._public: ssl.SSLContext | None = None  # for certificates from a public authority
        if cafile and not self.secure:
            raise TrustSetupError(
                f"--cafile is for TLS servers: write the address as wss://{address.display}."
            )
        if self.secure and self.ca_context is None:
            self.pin = read_known(known_path).get(self.key)  # KnownServersError: cannot decide

    def connect_kwargs(self) -> dict[str, Any]:
        if not self.secure:
            return {}
        if self.ca_context is not None:
            return {"ssl": self.ca_context}
        if self.pin is not None:
            if self._pinned is None or self._pinned.pin != self.pin:
                self._pinned = pinned_context(self.pin)
            return {"ssl": self._pinned}
        if self._public is None:  # loading the system's authorities takes a while: once
            self._public = ssl.create_default_context()
        return {"ssl": self._public}


def peer_fingerprint(ws: ClientConnection) -> str:
    sslobj = ws.transport.get_extra_info("ssl_object")
    return fingerprint(sslobj.getpeercert(binary_form=True) or b"") if sslobj is not None else ""


def trust_for(cafile: str | None, known_servers: str | None) -> Callable[[Address], Trust]:
    """How to settle trust for an address; TrustSetupError if --cafile cannot be used."""
    ca_context = cafile_context(cafile) if cafile else None
    known_path = known_servers or default_known_path(os.environ, os.path.expanduser("~"), os.name == "nt")
    return lambda address: Trust(address, known_path, cafile, ca_context)
