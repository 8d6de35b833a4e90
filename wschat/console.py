"""The terminal client's screen and keyboard: an interactive terminal, or plain lines. I/O.

- `TerminalConsole`: on an interactive terminal the client reads keys itself (see
  `wschat.lineedit` for why), prints incoming text above the line being typed and redraws it;
  it remembers what the last screenful holds, so that a message printed there can be redrawn
  in place (`revise`: a reaction or an edit) as long as it is still on screen;
- `PlainConsole`: piped input, output to a file or pipe, or no raw terminal (Windows): lines
  through `aioconsole`.

Both print exactly the text they are given: what to show, and how it looks, is decided by
`wschat.clientstate` and `wschat.render`. Also here: `ask_address()` (the start-up question,
after the servers found on the LAN), `handle_signals()` (Ctrl+C, SIGTERM, Ctrl+Z) and
`unicode_ok()` (can the output show emojis).
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import getpass
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

import aioconsole

from wschat.address import Address, AddressError, parse_address
from wschat.clientargs import EXIT_USAGE
from wschat.display import Notice
from wschat.lan import BROWSE_SECONDS, BadChoice, Found, choose, listing, prompt
from wschat.lineedit import Edited, EndOfInput, LineEditor, Submitted
from wschat.mdns import browse
from wschat.render import Renderer, escape, rows
from wschat.trust import KnownServersError, normalise_fingerprint
from wschat.trustio import Trust, TrustSetupError

try:
    import termios
except ImportError:  # Windows: no raw terminal; aioconsole does the input
    termios = None  # type: ignore[assignment]


class Console(Protocol):
    prompt: Callable[[], str]  # the input line's prompt while no question is asked
    on_edit: Callable[[str], None]  # the line being typed changed (a raw terminal only)

    async def start(self) -> None: ...
    def show(self, text: str, key: Any = None) -> None: ...
    def revise(self, key: Any, text: str) -> bool: ...
    async def readline(self, prompt: str | None = None) -> str: ...
    def refresh(self) -> None: ...
    async def stop(self) -> None: ...


class TerminalConsole:
    """An interactive terminal: keys go to a `LineEditor`; incoming text is printed above the
    line being typed, which is then redrawn, so nothing garbles it."""

    def __init__(self, prompt: Callable[[], str]) -> None:
        self.prompt = prompt
        self.on_edit: Callable[[str], None] = _ignore
        self.fd = sys.stdin.fileno()
        self.out = sys.stdout
        self.editor = LineEditor()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.lines: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self.asking: str | None = None  # a one-off prompt (the server address)
        self.last_prompt = ""  # the prompt the last line was typed after
        self.saved: list[Any] | None = None
        self.mode: list[Any] = []
        # what the screen shows above the input line, oldest first: [key, text, rows] of each
        # text printed, as many as fill one screen, at `width` columns
        self.screen: collections.deque[list[Any]] = collections.deque()
        self.screen_rows = 0
        self.width = 0

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
        self.screen.clear()  # the shell printed meanwhile: where things are is no longer known
        self.screen_rows = 0
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
            elif isinstance(event, Edited) and self.asking is None:  # not an answer to a question
                self.on_edit(event.line)
        self.refresh()

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed terminal must not crash the client
            self.out.write(text)
            self.out.flush()

    def show(self, text: str, key: Any = None) -> None:
        self._write("\r\x1b[K" + text + "\n" + self._input_line())
        columns, lines = self._size()
        if columns != self.width:  # resized: the terminal rewrapped what it shows
            self.screen.clear()
            self.screen_rows, self.width = 0, columns
        self.screen.append([key, text, rows(text, columns)])
        self.screen_rows += self.screen[-1][2]
        self._fit(lines)

    def revise(self, key: Any, text: str) -> bool:
        """Print `text` over what was shown with `key` if it is still on screen (what was printed
        below it is printed again under it); False if it is not there any more."""
        columns, lines = self._size()
        at = next((i for i, item in enumerate(self.screen) if item[0] == key), None)
        if key is None or at is None or columns != self.width:
            return False
        below = list(itertools.islice(self.screen, at, None))
        up = sum(item[2] for item in below)  # the input line is the row under the last of them
        new = rows(text, columns)
        self.screen_rows += new - below[0][2]
        below[0][1:] = [text, new]
        again = "".join(item[1] + "\n" for item in below)
        self._write(f"\r\x1b[K\x1b[{up}A\x1b[J" + again + self._input_line())
        self._fit(lines)
        return True

    def _fit(self, lines: int) -> None:
        """Forget what scrolled off the screen (its last row is the input line)."""
        while self.screen and self.screen_rows > lines - 1:
            self.screen_rows -= self.screen.popleft()[2]

    def _size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self.out.fileno())
        except (OSError, ValueError):
            return 80, 24
        return size.columns, size.lines

    def _input_line(self) -> str:
        return self.editor.render(self._prompt(), self._size()[0])

    def _prompt(self) -> str:
        return self.asking if self.asking is not None else self.prompt()

    def refresh(self) -> None:
        self._write(self._input_line())

    async def secret(self, prompt: str) -> str:
        """A password read with getpass (no echo): the line editor lets go of the terminal
        meanwhile. On a daemon thread, so that quitting never waits for it. EOFError at end of input."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()

        def read() -> None:
            try:
                got = getpass.getpass(prompt)
            except BaseException:  # EOFError, or the terminal went away
                loop.call_soon_threadsafe(lambda: done.done() or done.set_exception(EOFError()))
            else:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(got))

        loop.remove_reader(self.fd)
        self._write("\r\x1b[K")
        try:
            if self.saved is not None and termios is not None:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            threading.Thread(target=read, name="chat-getpass", daemon=True).start()
            return await done
        finally:
            if termios is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(self.fd, termios.TCSANOW, self.mode)
            loop.add_reader(self.fd, self._readable)
            self.refresh()

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
        self.on_edit: Callable[[str], None] = _ignore  # lines arrive whole: never called
        self.blocking = {fd: _blocking(fd) for fd in (0, 1, 2)}

    async def start(self) -> None:
        self.reader, self.writer = await aioconsole.get_standard_streams()

    def show(self, text: str, key: Any = None) -> None:
        self.writer.write(text + "\n")

    def revise(self, key: Any, text: str) -> bool:
        return False  # lines already written stay as they are

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


def _ignore(line: str) -> None:
    pass


def _blocking(fd: int) -> bool | None:
    try:
        return os.get_blocking(fd)
    except OSError:
        return None


def unicode_ok(stream: Any) -> bool:
    """Whether the stream can show emojis and box-drawing characters."""
    encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "").replace("_", "")
    return encoding in ("utf8", "utf8sig")


def handle_signals(console: Console, on_signal: Callable[[], None]) -> None:
    """Ctrl+C, SIGTERM and hang-ups call `on_signal`; Ctrl+Z suspends a raw terminal cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
    if isinstance(console, TerminalConsole):
        loop.add_signal_handler(signal.SIGTSTP, console.suspend)
        loop.add_signal_handler(signal.SIGCONT, console.resume)


class NoAddress(Exception):
    """No usable address was given: str(self) says why; exit with `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def ask_address(
    console: Console,
    renderer: Renderer,
    settle: Callable[[Address], Trust],
    browse_seconds: float = BROWSE_SECONDS,
) -> tuple[Address, Trust]:
    """List the chat servers announced on the LAN (`wschat.mdns`, for `browse_seconds`; 0: do not
    look), then ask for the server address, a number from the list or Enter for the first one,
    until it is usable; NoAddress at end of input or if the known servers file is unusable
    (asking again cannot help)."""
    console.show("\nServer Connection")
    servers: list[Found] = []
    if browse_seconds > 0:
        console.show("Looking for chat servers on this network...")
        servers, problem = await asyncio.to_thread(browse, browse_seconds)
        for line in [*([problem] if problem else []), *listing(servers, browse_seconds)]:
            console.show(escape(line))  # names come from the network: no escape sequences
    while True:
        try:
            text = await console.readline(prompt(servers))
        except EOFError:
            raise NoAddress("No server address given (end of input).", 1) from None
        if isinstance(console, TerminalConsole):
            console.show(console.last_prompt + escape(text))
        try:
            choice = choose(text, servers)
            if isinstance(choice, Found):
                return _found_server(console, choice, settle)
            address = parse_address(choice)
            return address, settle(address)
        except KnownServersError as exc:
            raise NoAddress(str(exc), EXIT_USAGE) from None
        except (AddressError, TrustSetupError, BadChoice) as exc:
            console.show(renderer.render(Notice(str(exc), "error")))


def _found_server(
    console: Console, server: Found, settle: Callable[[Address], Trust]
) -> tuple[Address, Trust]:
    """A server picked from the list; with TLS, the certificate it announced is pinned for this
    connection, unless --cafile or the known servers file already says what to trust."""
    address = parse_address(server.address)
    trust = settle(address)
    pin = normalise_fingerprint(server.fingerprint) if server.tls else None
    if pin and trust.ca_context is None and trust.pin is None:
        trust.pin = pin
        console.show(escape(f"Trusting the certificate {server.name} announced: SHA-256 {pin}"))
    return address, trust
