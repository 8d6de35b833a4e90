"""Reaching the chat server: open the WebSocket with the certificate's trust settled, and tell a
failure worth retrying from one that can never succeed. I/O.

- `Connector.open()`: connect; for wss:// settle trust on the way (--cafile, a public authority,
  the pinned fingerprint, or trust on first use, asking the user through the callbacks given);
- a failure that retrying cannot cure raises `GiveUp` with a sentence that says what to do and
  the exit status: the certificate is not trusted (1, see `wschat.trust`), the server refuses the
  address (HTTP 4xx at the handshake: 2), or the address names the wrong one of ws:// and wss://
  (checked by asking the server in the other protocol: 2). Anything else is worth a retry;
- `connect_error()`: why a retryable attempt failed, in a few plain words.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI

from wschat import __version__
from wschat.address import Address, os_error_reason
from wschat.render import escape
from wschat.trust import (
    QUESTION,
    KnownServersError,
    Verdict,
    changed_warning,
    decide,
    declined,
    is_yes,
    noninteractive_refusal,
    trusted_note,
    unknown_lines,
)
from wschat.trustio import (
    NotTrusted,
    PinMismatch,
    Trust,
    fetch_fingerprint,
    peer_fingerprint,
    read_known,
    remember,
)

MAX_FRAME = 32 * 1024 * 1024  # a resume may carry 1,000 messages of 4,000 characters
PROBE_TIMEOUT = 5.0
RETRYABLE_STATUS = (408, 429)  # 4xx answers that say "later", not "never"


class GiveUp(Exception):
    """Retrying cannot help: str(self) says why and what to do; exit with `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def connect_error(exc: BaseException, secure: bool = False) -> str:
    """Why connecting failed, in a few plain words (never a traceback)."""
    # a plain-WebSocket server answering a TLS hello resets the connection or garbles TLS
    hint = " (if the server has no TLS, use ws:// instead of wss://)" if secure else ""
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset" + hint
    if isinstance(exc, InvalidStatus):
        resp = exc.response
        body = escape(resp.body.decode("utf-8", "replace").strip()[:200]) if resp.body else ""
        return f"the server answered HTTP {resp.status_code}" + (f" ({body})" if body else "")
    if isinstance(exc, InvalidURI):
        return "the address is not a valid WebSocket URL"
    if isinstance(exc, InvalidHandshake):
        return "it did not answer as a WebSocket chat server"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc}){hint}"
    return _os_error(exc)


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return os_error_reason(exc.errno, str(exc))
    return escape(str(exc)) or type(exc).__name__


async def speaks_plain_http(host: str, port: int) -> bool:
    """Whether the server at host:port answers a plain (not TLS) HTTP request."""
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                return (await reader.readexactly(5)) == b"HTTP/"
            finally:
                writer.close()
    return False


async def speaks_tls(host: str, port: int) -> bool:
    """Whether the server at host:port completes a TLS handshake (nothing is sent over it)."""
    try:
        await fetch_fingerprint(host, port, timeout=PROBE_TIMEOUT)
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError
        return False
    return True


async def final_failure(exc: BaseException, address: Address, host: str, port: int) -> GiveUp | None:
    """A `GiveUp` if `exc` is a failure that retrying cannot cure, else None."""
    shown = address.display
    if isinstance(exc, InvalidStatus) and 400 <= exc.response.status_code < 500:
        if exc.response.status_code in RETRYABLE_STATUS:
            return None
        scheme = address.url.partition(":")[0]
        reason = connect_error(exc).rstrip(".")
        return GiveUp(
            f"Not connecting to {address.url}: {reason}. Check the address: the chat is at {scheme}://{shown}/.",
            2,
        )
    secure = address.url.startswith("wss:")
    tls_failed = isinstance(exc, (ConnectionResetError, ssl.SSLError))
    tls_failed = tls_failed and not isinstance(exc, ssl.SSLCertVerificationError)
    if secure and tls_failed and await speaks_plain_http(host, port):
        return GiveUp(f"Not connecting: {shown} has no TLS; use ws://{shown} instead of wss://.", 2)
    if (
        not secure
        and isinstance(exc, (InvalidMessage, ConnectionResetError))
        and await speaks_tls(host, port)
    ):
        return GiveUp(f"Not connecting: {shown} only speaks TLS; use wss://{shown} instead of ws://.", 2)
    return None


class Connector:
    """Opens connections to one address, settling trust in its certificate on the way."""

    def __init__(
        self,
        address: Address,
        trust: Trust,
        interactive: bool,
        ask: Callable[[str], Awaitable[str]],
        say: Callable[[str, str], None],
    ) -> None:
        self.address, self.trust, self.interactive = address, trust, interactive
        self.ask = ask  # the next line typed, as the answer to a question
        self.say = say  # a notice: (text, kind)

    async def open(self) -> ClientConnection:
        """Connect. Raises GiveUp when retrying cannot help; any other exception is worth a retry."""
        try:
            return await self._open()
        except NotTrusted as exc:
            raise GiveUp(str(exc), exc.status) from None
        except (OSError, InvalidHandshake) as exc:  # ssl.SSLError is an OSError
            final = await final_failure(exc, self.address, self.trust.host, self.trust.port)
            if final is not None:
                raise final from None
            raise

    async def _open(self) -> ClientConnection:
        trust = self.trust
        while True:
            try:
                ws = await connect(
                    self.address.url,
                    open_timeout=10,
                    close_timeout=2,
                    max_size=MAX_FRAME,
                    user_agent_header=f"wschat-terminal/{__version__}",
                    **trust.connect_kwargs(),
                )
            except PinMismatch as exc:
                assert trust.pin is not None
                raise NotTrusted(
                    changed_warning(trust.key, trust.pin, exc.presented, trust.known_path)
                ) from None
            except ssl.SSLCertVerificationError as exc:
                reason = exc.verify_message or "its issuer is unknown"
                if trust.cafile:
                    raise NotTrusted(
                        f"Not connecting: the certificate of {trust.key} is not trusted by "
                        f"--cafile {trust.cafile} ({reason})."
                    ) from None
                await self.trust_on_first_use(reason)
                continue  # trusted now: connect again at once, pinned
            if trust.pin is not None and (presented := peer_fingerprint(ws)) != trust.pin:
                # Only reachable if the handshake hook did not run (it refuses before anything is sent).
                ws.transport.abort()
                raise NotTrusted(changed_warning(trust.key, trust.pin, presented, trust.known_path))
            return ws

    async def trust_on_first_use(self, reason: str) -> None:
        """No authority vouches for the certificate: pin it if the user says so, or raise NotTrusted."""
        trust = self.trust
        presented = await fetch_fingerprint(trust.host, trust.port)
        try:
            known = read_known(trust.known_path)  # again: another client may have added it meanwhile
        except KnownServersError as exc:
            raise NotTrusted(str(exc), status=2) from None
        verdict = decide(known, trust.key, presented)
        if verdict is Verdict.CHANGED:
            raise NotTrusted(changed_warning(trust.key, known[trust.key], presented, trust.known_path))
        if verdict is Verdict.UNKNOWN:
            if not self.interactive:
                raise NotTrusted(noninteractive_refusal(trust.key, presented, reason))
            for line in unknown_lines(trust.key, presented, reason):
                self.say(line, "")
            if not is_yes(await self.ask(QUESTION)):
                raise NotTrusted(declined(trust.key))
            try:
                remember(trust.known_path, trust.key, presented)
                self.say(trusted_note(trust.key, trust.known_path), "ok")
            except (OSError, KnownServersError) as exc:  # trusted all the same, for this session
                problem = str(exc) if isinstance(exc, KnownServersError) else (exc.strerror or str(exc))
                self.say(trusted_note(trust.key, trust.known_path, problem), "error")
        trust.pin = presented
