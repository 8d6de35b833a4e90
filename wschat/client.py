"""The terminal client's I/O: the WebSocket connection and its reconnect loop, the keyboard, the screen.

Everything that decides *what* to send or show lives in the pure modules: `wschat.clientstate`
(login, rooms, outbox, resume, de-duplication), `wschat.commands` (parsing, formatting, escaping,
colour, backoff) and `wschat.lineedit` (the line being typed). This module only moves events
between them and the outside world:

- the connection loop connects with `websockets`, feeds every frame to `ClientState.frame()`,
  sends what `ClientState.pump()` says is due, and on loss waits out the backoff schedule;
- the input loop reads lines and feeds them to `ClientState.line()`. On an interactive terminal
  it reads keys itself (`TerminalConsole`, see `wschat.lineedit` for why); otherwise (piped
  input, output to a file, Windows) it uses `aioconsole` (`PlainConsole`);
- `App.run()` ends on /quit, end of input, Ctrl+C or a fatal answer, flushing the outbox first
  (bounded by --flush-timeout) except after Ctrl+C;
- for wss:// it settles whether the server's certificate is trusted (`Trust`, `App.open()`):
  --cafile, a public authority, or trust on first use with the fingerprint pinned. What counts
  as trusted, and every sentence about it, is in `wschat.trust`.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import json
import os
import signal
import socket
import ssl
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aioconsole
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from wschat import __version__
from wschat.clientstate import ClientState, QuitRequested, Send, Show, Stop
from wschat.commands import (
    DEFAULT_ADDRESS,
    HELP,
    Address,
    AddressError,
    Formatter,
    Style,
    backoff,
    color_enabled,
    escape,
    os_error_reason,
    parse_address,
    seconds,
)
from wschat.lineedit import EndOfInput, LineEditor, Submitted
from wschat.names import InvalidName, check_room
from wschat.tls import TLSSetupError, read_file
from wschat.trust import (
    KNOWN_ENV,
    KNOWN_FILE,
    QUESTION,
    KnownServersError,
    Verdict,
    changed_warning,
    decide,
    declined,
    default_known_path,
    fingerprint,
    is_yes,
    noninteractive_refusal,
    parse_known,
    render_known,
    server_key,
    trusted_note,
    unknown_lines,
)

try:
    import termios
except ImportError:  # Windows: no raw terminal; aioconsole does the input
    termios = None  # type: ignore[assignment]

MAX_FRAME = 32 * 1024 * 1024  # a resume may carry 1,000 messages of 4,000 characters

BANNER = "Welcome to WebSocket Chat!\n" + "=" * 40


# ------------------------------------------------------------------ consoles


class Console(Protocol):
    prompt: Callable[[], str]  # the input line's prompt while no question is asked

    async def start(self) -> None: ...
    def show(self, text: str) -> None: ...
    async def readline(self, prompt: str | None = None) -> str: ...
    def refresh(self) -> None: ...
    async def stop(self) -> None: ...


class TerminalConsole:
    """An interactive terminal: keys go to a `LineEditor`; incoming text is printed above the
    line being typed, which is then redrawn, so nothing garbles it."""

    def __init__(self, prompt: Callable[[], str]) -> None:
        self.prompt = prompt
        self.fd = sys.stdin.fileno()
        self.out = sys.stdout
        self.editor = LineEditor()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.lines: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self.asking: str | None = None  # a one-off prompt (the server address)
        self.last_prompt = ""  # the prompt the last line was typed after
        self.saved: list[Any] | None = None
        self.mode: list[Any] = []

    async def start(self) -> None:
        assert termios is not None
        self.saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        # No echo, no line buffering; keep ISIG so Ctrl+C still arrives as SIGINT.
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        self.mode = mode
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        asyncio.get_running_loop().add_reader(self.fd, self._readable)
        self.refresh()

    def suspend(self) -> None:
        """Ctrl+Z: give the shell its terminal back as it was, then stop."""
        self._write("\r\x1b[K")
        if self.saved is not None and termios is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        os.kill(os.getpid(), signal.SIGSTOP)

    def resume(self) -> None:
        """Back from Ctrl+Z (`fg`): shells do not restore a job's terminal mode, so set it again."""
        if termios is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSANOW, self.mode)
        self.refresh()

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # the terminal went away
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.fd)
            self.lines.put_nowait(None)
            return
        for event in self.editor.feed(self.decoder.decode(data)):
            if isinstance(event, Submitted):
                self.lines.put_nowait((self._prompt(), event.line))
            elif isinstance(event, EndOfInput):
                self.lines.put_nowait(None)
        self.refresh()

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed terminal must not crash the client
            self.out.write(text)
            self.out.flush()

    def show(self, text: str) -> None:
        self._write("\r\x1b[K" + text + "\n" + self._input_line())

    def _input_line(self) -> str:
        try:
            width = os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError):
            width = 80
        return self.editor.render(self._prompt(), width)

    def _prompt(self) -> str:
        return self.asking if self.asking is not None else self.prompt()

    def refresh(self) -> None:
        self._write(self._input_line())

    async def readline(self, prompt: str | None = None) -> str:
        self.asking = prompt
        self.refresh()
        try:
            got = await self.lines.get()
        finally:
            self.asking = None
        if got is None:
            self.lines.put_nowait(None)  # stays at end of input
            raise EOFError
        self.last_prompt, line = got
        return line

    async def stop(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.fd)
        self._write("\r\x1b[K")
        if self.saved is not None and termios is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


class PlainConsole:
    """Piped input, output to a file or pipe, or no raw terminal: lines through aioconsole."""

    def __init__(self, prompt: Callable[[], str]) -> None:
        self.prompt = prompt
        self.blocking = {fd: _blocking(fd) for fd in (0, 1, 2)}

    async def start(self) -> None:
        self.reader, self.writer = await aioconsole.get_standard_streams()

    def show(self, text: str) -> None:
        self.writer.write(text + "\n")

    async def readline(self, prompt: str | None = None) -> str:
        # Chat prompts would only litter a log; the questions at start-up are shown as the seed did.
        # Not aioconsole.ainput(): it drops a last line that has no newline.
        if prompt:
            self.writer.write(prompt)
        data = await self.reader.readline()
        if not data:
            raise EOFError
        return data.decode("utf-8", "replace").rstrip("\r\n")

    def refresh(self) -> None:
        pass

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), 5)
        # aioconsole makes the standard streams non-blocking; a shell sharing them must not inherit that
        for fd, was in self.blocking.items():
            if was is not None:
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, was)


def _blocking(fd: int) -> bool | None:
    try:
        return os.get_blocking(fd)
    except OSError:
        return None


# ------------------------------------------------------------------ TLS trust


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


# ------------------------------------------------------------------ the app


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
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return os_error_reason(exc.errno, str(exc))
    return escape(str(exc)) or type(exc).__name__


class App:
    def __init__(
        self,
        opts: argparse.Namespace,
        console: Console,
        state: ClientState,
        address: Address,
        trust: Trust,
    ) -> None:
        self.opts = opts
        self.console = console
        self.state = state
        self.address = address
        self.trust = trust
        self.question: asyncio.Future[str] | None = None  # the input loop's next line answers it
        self.asking: str | None = None  # the question, shown as the prompt meanwhile
        console.prompt = self.prompt
        self.loop = asyncio.get_running_loop()
        self.interactive = state.interactive
        self.changed = asyncio.Event()
        self.quitting = asyncio.Event()
        self.hurry = False  # quit without flushing the outbox (Ctrl+C, a fatal answer)
        self.status = 0
        self.final: str | None = None  # a sentence for stderr at exit
        self.ws: ClientConnection | None = None
        self.outq: asyncio.Queue[str] | None = None
        self.timer: asyncio.TimerHandle | None = None

    # -- plumbing

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def until(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Wait until pred() holds (re-checked whenever something happens), at most `timeout` s."""
        deadline = self.loop.time() + timeout
        while not pred():
            left = deadline - self.loop.time()
            if left <= 0:
                return False
            try:
                # not wait_for(): on 3.11 it can swallow a cancellation that meets a wake-up
                async with asyncio.timeout(left if left != float("inf") else None):
                    await self.changed.wait()
            except TimeoutError:
                return pred()
        return True

    def apply(self, effects: list[Any]) -> None:
        for e in effects:
            if isinstance(e, Show):
                self.console.show(e.text)
            elif isinstance(e, Send):
                self.send(e.frame)
            elif isinstance(e, QuitRequested):
                self.request_quit()
            elif isinstance(e, Stop):
                self.status, self.final = e.status, e.message
                self.request_quit(hurry=True)
        self.pump()
        self.console.refresh()
        self.notify()

    def send(self, frame: dict[str, Any]) -> None:
        if self.outq is not None:
            self.outq.put_nowait(json.dumps(frame, ensure_ascii=False))

    def pump(self) -> None:
        frames, wake = self.state.pump(self.loop.time())
        for frame in frames:
            self.send(frame)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if wake is not None:
            self.timer = self.loop.call_at(wake, self.pump)

    def say(self, text: str, kind: str = "info") -> None:
        self.console.show(self.state.fmt.notice(text, kind))

    def prompt(self) -> str:
        return self.asking if self.asking is not None else self.state.prompt()

    async def ask(self, question: str) -> str:
        """The next line typed, as the answer to `question` (the input loop stays the only reader)."""
        self.question = self.loop.create_future()
        self.asking = question
        if not isinstance(self.console, TerminalConsole):
            self.console.show(question)  # a plain console prints no prompts
        self.console.refresh()
        try:
            return await self.question
        finally:
            self.question = self.asking = None
            self.console.refresh()

    def request_quit(self, hurry: bool = False) -> None:
        self.hurry = self.hurry or hurry
        self.quitting.set()
        self.notify()

    def interrupt(self) -> None:
        """Ctrl+C or SIGTERM: leave now, without waiting for the outbox."""
        self.request_quit(hurry=True)

    # -- the loops

    async def run(self) -> int:
        tasks = [
            asyncio.create_task(self.input_loop()),
            asyncio.create_task(self.connection_loop()),
        ]
        for t in tasks:
            t.add_done_callback(self._task_done)
        try:
            await self.quitting.wait()
            await self.flush()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.timer is not None:
                self.timer.cancel()
        self.console.prompt = str
        self.say("Goodbye!")
        return self.status

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A loop ended by itself: fine if it asked to quit; a bug otherwise, which must not hang us."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.status = 1
        self.final = "Internal error (please report it):\n" + "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        )
        self.request_quit(hurry=True)

    async def flush(self) -> None:
        st = self.state
        if not st.outbox:
            return
        n = len(st.outbox)
        if not self.hurry:
            if not st.online and st.logins:
                note = f"Sending {n} queued message(s) before quitting (Ctrl+C quits at once)..."
                self.console.show(st.fmt.notice(note, "queued"))
            await self.until(lambda: not st.outbox or self.hurry, self.opts.flush_timeout)
        if st.outbox:
            n = len(st.outbox)
            self.console.show(st.fmt.notice(f"{n} message(s) could not be sent and are lost.", "error"))
            if self.status == 0 and not self.hurry:
                self.status = 1

    async def input_loop(self) -> None:
        st = self.state
        while True:
            try:
                # the name question is shown even on a plain console, as the seed did
                line = await self.console.readline(st.prompt() if st.naming else None)
            except EOFError:
                if self.question is not None and not self.question.done():
                    self.question.set_result("")  # no answer is no
                if st.naming and not st.me:
                    self.status, self.final = 1, "No username given (end of input)."
                self.request_quit()
                return
            question = self.question if self.question is not None and not self.question.done() else None
            answer = question is not None or st.naming
            if isinstance(self.console, TerminalConsole) and (answer or line.startswith("/")):
                self.console.show(self.console.last_prompt + escape(line))  # keep answers and commands
            if question is not None:
                question.set_result(line)
                continue
            if not self.interactive:
                # A script's lines take effect in order: wait for the login and for room changes.
                timeout = self.opts.flush_timeout
                await self.until(lambda: st.settled, timeout)
                if st.needs_server(line):
                    await self.until(lambda: st.online and st.settled, timeout)
            self.apply(st.line(line, self.loop.time()))
            if self.quitting.is_set():  # lines after /quit are not for us
                return

    async def connection_loop(self) -> None:
        st = self.state
        delays, attempt = backoff(), 0
        first = True
        while True:
            await self.until(lambda: not st.naming, float("inf"))
            if first:
                self.say(f"Connecting to {self.address.display}...")
                first = False
            try:
                ws = await self.open()
            except NotTrusted as exc:  # retrying cannot help, and must not wear the user down
                self.status, self.final = exc.status, str(exc)
                self.request_quit(hurry=True)
                return
            except Exception as exc:  # any other way of failing to connect is reported, then retried
                attempt += 1
                delay = next(delays)
                secure = self.address.url.startswith("wss:")
                text = f"Cannot reach {self.address.display}: {connect_error(exc, secure)}"
                self.say(f"{text} - reconnecting in {seconds(delay)} (attempt {attempt})", "offline")
                await asyncio.sleep(delay)
                continue
            logins = st.logins
            await self.session(ws)
            if st.logins > logins:  # it worked for a while: start the schedule again
                delays, attempt = backoff(), 0
            code, reason = ws.close_code or 1006, ws.close_reason or ""
            if code == 4000:
                self.status = 1
                self.final = "Another connection logged in with this name and took over; not reconnecting."
                self.request_quit(hurry=True)
                return
            if st.naming:  # the server gave up waiting for a name: reconnect once one is typed
                continue
            if code not in (1000, 1001, 1006) and reason:
                self.say(f"The server closed the connection: {escape(reason)}", "offline")
            attempt += 1
            delay = next(delays)
            self.say(f"Connection lost - reconnecting in {seconds(delay)} (attempt {attempt})", "offline")
            await asyncio.sleep(delay)

    async def open(self) -> ClientConnection:
        """Connect, settling on the way whether the server's certificate is trusted.

        Raises NotTrusted to give up; any other exception is a failure to retry later.
        """
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
                self.console.show(line)
            if not is_yes(await self.ask(QUESTION)):
                raise NotTrusted(declined(trust.key))
            try:
                remember(trust.known_path, trust.key, presented)
                self.say(trusted_note(trust.key, trust.known_path), "ok")
            except (OSError, KnownServersError) as exc:  # trusted all the same, for this session
                problem = str(exc) if isinstance(exc, KnownServersError) else (exc.strerror or str(exc))
                self.say(trusted_note(trust.key, trust.known_path, problem), "error")
        trust.pin = presented

    async def session(self, ws: ClientConnection) -> None:
        """One connection, from open to close."""
        self.ws, self.outq = ws, asyncio.Queue()
        writer = asyncio.create_task(self._writer(ws, self.outq))
        self.state.opened(self.loop.time())
        self.apply([])
        try:
            async for raw in ws:
                self.on_raw(raw)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            self.ws = self.outq = None
            self.state.closed()
            self.apply([])
            if self.quitting.is_set():
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _writer(self, ws: ClientConnection, q: asyncio.Queue[str]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(await q.get())

    def on_raw(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            return
        try:
            frame = json.loads(raw)
        except ValueError:
            self.say("The server sent something that is not JSON; ignored.", "error")
            return
        if not isinstance(frame, dict):
            return
        try:
            effects = self.state.frame(frame, self.loop.time())
        except Exception as exc:  # a frame we cannot show must not end the chat
            kind = escape(frame.get("type"))
            self.say(f"Could not show a '{kind}' frame: {escape(exc)}", "error")
            return
        self.apply(effects)


# ------------------------------------------------------------------ start-up


def build_parser() -> argparse.ArgumentParser:
    width = max(len(u) for u, _ in HELP)
    commands = "\n".join(f"  {usage.ljust(width)}  {text}" for usage, text in HELP)
    ap = argparse.ArgumentParser(
        prog="chat-client.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Terminal client for the wschat server: chat in rooms, private messages, history.",
        epilog=f"""\
address forms:
  host:port          e.g. 192.168.1.100:8765
  host               port 8765
  ws://host:port     as the server prints it
  wss://host[:port]  TLS (port 443 unless given)
  [::1]:8765         IPv6
  Without an address the client asks for one (default {DEFAULT_ADDRESS}).

commands while chatting:
{commands}
  Messages from rooms you are in but not talking in are tagged [#room].

connection:
  If the server cannot be reached or the connection drops, the client retries by
  itself: after about 2 s, then 4, 8, 16 and at most 30 s between attempts (with
  random jitter). It logs back in with the same name, rooms and place in each room:
  messages missed meanwhile are shown once, never twice. Messages typed while
  disconnected wait in an outbox and are sent, each exactly once, after reconnecting.

scripts:
  With piped input, each line is a message or command, and the end of input acts
  like /quit: e.g.  printf 'hi\\n/quit\\n' | python chat-client.py host:port --username bot
  The client waits (up to --flush-timeout) until the server has stored every message.

TLS (wss:// addresses):
  A certificate from an authority this computer trusts is checked as a browser would.
  --cafile FILE trusts the certificate(s) in FILE instead, e.g. the server's cert.pem.
  Otherwise (a self-signed certificate) the client shows the certificate's SHA-256
  fingerprint, to compare with the one the server printed, and asks whether to trust
  it. A yes is remembered in the known servers file (--known-servers, default
  $WSCHAT_KNOWN_SERVERS or ~/.config/wschat/known_servers.json); later connections
  trust that certificate only, and refuse the server if its certificate changes.
  Without a terminal to ask, an unknown certificate is refused (exit status 1).

environment:
  NO_COLOR  set to anything to turn colour off (also off when output is not a terminal)

exit status:
  0 after /quit, end of input or Ctrl+C; 1 if the name was refused and there is no
  terminal to ask for another, messages could not be sent before quitting, or the
  server's certificate is not trusted; 2 for a bad address or arguments (--cafile,
  the known servers file).""",
    )
    ap.add_argument("address", nargs="?", help="server address (see below); asked for when missing")
    ap.add_argument("-u", "--username", metavar="NAME", help="your name; asked for when missing")
    ap.add_argument(
        "--room",
        action="append",
        default=[],
        metavar="ROOM",
        help="room to join at start instead of general (repeat for several; you talk in the first)",
    )
    ap.add_argument("--no-color", action="store_true", help="no colours (same as setting NO_COLOR)")
    ap.add_argument(
        "--cafile",
        metavar="FILE",
        help="for wss://: trust the certificate(s) in FILE (PEM or DER), e.g. the server's cert.pem",
    )
    ap.add_argument(
        "--known-servers",
        metavar="FILE",
        help=f"where trusted self-signed certificates are remembered (default ${KNOWN_ENV} or "
        f"~/.config/wschat/{KNOWN_FILE})",
    )
    ap.add_argument(
        "--flush-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="at /quit or end of input, how long to wait for unsent messages to be stored (default 10)",
    )
    ap.add_argument("--version", action="version", version=f"wschat {__version__}")
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = build_parser()
    opts = ap.parse_args(argv)
    rooms = []
    for raw in opts.room:
        try:
            rooms.append(check_room(raw))
        except InvalidName as exc:
            ap.error(f"--room {raw}: {exc}")
    opts.room = list(dict.fromkeys(rooms))
    if opts.flush_timeout < 0:
        ap.error("--flush-timeout must be 0 or more")
    return opts


def _unicode_ok(stream: Any) -> bool:
    encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "").replace("_", "")
    return encoding in ("utf8", "utf8sig")


async def run_client(opts: argparse.Namespace) -> tuple[int, str | None]:
    interactive = sys.stdin.isatty()
    raw_terminal = (
        termios is not None and interactive and sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    )
    style = Style(color_enabled(os.environ, sys.stdout.isatty(), opts.no_color), _unicode_ok(sys.stdout))
    fmt = Formatter(style, time.time)
    state = ClientState(fmt, name=opts.username, rooms=opts.room or None, interactive=interactive)
    console: Console = TerminalConsole(str) if raw_terminal else PlainConsole(str)  # no prompt yet
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    app: App | None = None

    def on_signal() -> None:
        if app is not None:
            app.interrupt()
        elif main_task is not None:
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
    if isinstance(console, TerminalConsole):
        loop.add_signal_handler(signal.SIGTSTP, console.suspend)
        loop.add_signal_handler(signal.SIGCONT, console.resume)

    try:
        ca_context = cafile_context(opts.cafile) if opts.cafile else None
    except TrustSetupError as exc:
        return 2, str(exc)
    known_path = opts.known_servers or default_known_path(
        os.environ, os.path.expanduser("~"), os.name == "nt"
    )

    def settle(address: Address) -> Trust:
        return Trust(address, known_path, opts.cafile, ca_context)

    await console.start()
    try:
        console.show(BANNER)
        address: Address | None = None
        trust: Trust | None = None
        if opts.address is not None:
            try:
                address = parse_address(opts.address)
                trust = settle(address)
            except (AddressError, TrustSetupError, KnownServersError) as exc:
                return 2, str(exc)
        else:
            console.show("\nServer Connection")
            while trust is None:
                question = f"Enter server address (default: {DEFAULT_ADDRESS}): "
                try:
                    text = await console.readline(question)
                except EOFError:
                    return 1, "No server address given (end of input)."
                if isinstance(console, TerminalConsole):
                    console.show(console.last_prompt + escape(text))
                try:
                    address = parse_address(text)
                    trust = settle(address)
                except KnownServersError as exc:
                    return 2, str(exc)
                except (AddressError, TrustSetupError) as exc:
                    if not interactive:
                        return 2, str(exc)
                    console.show(fmt.notice(str(exc), "error"))
        assert address is not None
        if state.naming:
            console.show("")
        app = App(opts, console, state, address, trust)
        status = await app.run()
        return status, app.final
    except asyncio.CancelledError:  # Ctrl+C while asking for the address
        return 0, None
    finally:
        await console.stop()


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        status, final = asyncio.run(run_client(opts))
    except KeyboardInterrupt:  # platforms without signal handlers in the event loop
        status, final = 0, None
    if final:
        print(final, file=sys.stderr)
    sys.exit(status)
