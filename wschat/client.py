"""The terminal client's I/O: the WebSocket connection and its reconnect loop, the keyboard, the screen.

Everything that decides *what* to send or show lives in the pure modules: `wschat.clientstate`
(login, rooms, outbox, resume, de-duplication; it emits display events), `wschat.render` (how
those events look: escaping, colour, layout), `wschat.commands` (parsing, backoff) and
`wschat.lineedit` (the line being typed). This module only moves events between them and the
outside world:

- the connection loop (`wschat.clientconn`, a part of `App`) connects (`wschat.reach`: trust
  in the certificate, failures that are final), feeds every frame to `ClientState.frame()`,
  and on loss waits out the backoff schedule; `App.pump` sends what `ClientState.pump()` says
  is due;
- the input loop reads lines (`wschat.console`) and feeds them to `ClientState.line()`;
- `App.run()` ends on /quit, end of input, Ctrl+C or a fatal answer, flushing the outbox first
  (bounded by --flush-timeout) except after Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from wschat import clientjobs
from wschat.address import Address, AddressError, parse_address
from wschat.clientargs import EXIT_USAGE, parse_args, script_problem
from wschat.clientauth import PasswordUnavailable, TokenFile, device_label, password_for, tokens_for
from wschat.clientconn import ConnectionLoop
from wschat.clientframes import SaveToken
from wschat.clientstate import ClientState, Effect, Job, QuitRequested, Send, Show, Stop
from wschat.console import (
    Console,
    NoAddress,
    PlainConsole,
    TerminalConsole,
    ask_address,
    handle_signals,
    termios,
    unicode_ok,
)
from wschat.display import Display, Notice, Revised
from wschat.mdns import print_servers
from wschat.reach import Connector, connect_error
from wschat.render import Renderer, Style, color_enabled, escape, links_enabled
from wschat.trust import KnownServersError
from wschat.trustio import Trust, TrustSetupError, trust_for

__all__ = ["App", "connect_error", "main", "parse_args", "run_client"]

BANNER = "Welcome to WebSocket Chat!\n" + "=" * 40


class App(ConnectionLoop):
    def __init__(
        self,
        opts: argparse.Namespace,
        console: Console,
        state: ClientState,
        renderer: Renderer,
        address: Address,
        trust: Trust,
    ) -> None:
        self.opts = opts
        self.console = console
        self.state = state
        self.renderer = renderer
        self.address = address
        self.connector = Connector(address, trust, state.interactive, self.ask, self.say)
        self.question: asyncio.Future[str] | None = None  # the input loop's next line answers it
        self.asking: str | None = None  # the question, shown as the prompt meanwhile
        console.prompt = self.prompt
        console.on_edit = self.edited
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
        self.jobs: set[asyncio.Future[None]] = set()  # file transfers (wschat.clientjobs)
        self.tokens: TokenFile | None = None  # an account's session token file (--login, --register)

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

    def apply(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Show):
                self.show(e.event, e.key)
            elif isinstance(e, Send):
                self.send(e.frame)
            elif isinstance(e, QuitRequested):
                self.request_quit()
            elif isinstance(e, Stop):
                self.give_up(e.status, e.message)
            elif isinstance(e, Job):
                clientjobs.start(self, e)
            elif isinstance(e, SaveToken) and self.tokens is not None:
                self.tokens.save(e.token)
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

    def edited(self, line: str) -> None:
        if effects := self.state.edited(line, self.loop.time()):
            self.apply(effects)

    def show(self, event: Display, key: tuple[str, int] | None = None) -> None:
        if isinstance(event, Revised):  # redrawn in place if the console can, else said in a line
            if self.console.revise(event.key, self.renderer.render(event)) or event.instead is None:
                return
            event = event.instead
        self.console.show(self.renderer.render(event), key)

    def say(self, text: str, kind: str = "info") -> None:
        """A notice of the client's own; with kind "" a plain line (the certificate's details)."""
        if self.state.quiet and kind not in ("error", "offline"):
            return
        if kind:
            self.show(Notice(text, kind))
        else:
            self.console.show(escape(text))

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
        if self.final is None:  # otherwise the reason is the last word, on stderr
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
        """Wait (bounded) for the outbox to be acknowledged; say what is lost."""
        st = self.state
        if not st.outbox:
            return
        if not self.hurry and st.unsent:
            if not st.online and st.logins:
                note = f"Sending {st.unsent} queued message(s) before quitting (Ctrl+C quits at once)..."
                self.say(note, "queued")
            await self.until(lambda: not st.unsent or self.hurry, self.opts.flush_timeout)
        if st.outbox:
            held = len(st.outbox) - st.unsent
            lost = f"{len(st.outbox)} message(s) could not be sent and are lost"
            self.say(lost + (f" ({held} waiting for someone to come online)." if held else "."), "error")
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

    def give_up(self, status: int, sentence: str) -> None:
        self.status, self.final = status, sentence
        self.request_quit(hurry=True)


async def run_client(opts: argparse.Namespace) -> tuple[int, str | None]:
    interactive = sys.stdin.isatty()
    if not interactive and (problem := script_problem(opts)):
        return EXIT_USAGE, problem
    try:
        settle = trust_for(opts.cafile, opts.known_servers)
        where = (
            (address := parse_address(opts.address), settle(address)) if opts.address is not None else None
        )
    except (AddressError, TrustSetupError, KnownServersError) as exc:
        return EXIT_USAGE, str(exc)
    color = color_enabled(os.environ, sys.stdout.isatty(), opts.no_color)
    renderer = Renderer(
        Style(color, unicode_ok(sys.stdout), links=links_enabled(os.environ, color)), time.time
    )
    try:
        password = password_for(opts, where[0] if where else None)
    except PasswordUnavailable as exc:
        return EXIT_USAGE, str(exc)
    state = ClientState(
        name=opts.username,
        rooms=opts.room or None,
        interactive=interactive,
        quiet=opts.quiet,
        account=opts.account,
        password=password,
        device=device_label(),
    )
    raw_terminal = (
        termios is not None and interactive and sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    )
    console: Console = TerminalConsole(str) if raw_terminal else PlainConsole(str)  # no prompt yet
    main_task = asyncio.current_task()
    apps: list[App] = []

    def on_signal() -> None:
        if apps:
            apps[0].interrupt()
        elif main_task is not None:
            main_task.cancel()

    handle_signals(console, on_signal)
    await console.start()
    try:
        if interactive:  # a script's output is the conversation, not the furniture
            console.show(BANNER)
        if where is None:
            where = await ask_address(console, renderer, settle, opts.browse)
        if state.naming:
            console.show("")
        apps.append(App(opts, console, state, renderer, *where))
        apps[0].tokens = tokens_for(opts, state, where[0])
        status = await apps[0].run()
        return status, apps[0].final
    except NoAddress as exc:
        return exc.status, str(exc)
    except asyncio.CancelledError:  # Ctrl+C while asking for the address
        return 0, None
    finally:
        await console.stop()


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    if opts.list:  # the chat servers on the LAN, and exit (wschat.mdns)
        sys.exit(print_servers(opts.browse))
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        status, final = asyncio.run(run_client(opts))
    except KeyboardInterrupt:  # platforms without signal handlers in the event loop
        status, final = 0, None
    if final:
        print(final, file=sys.stderr)
    sys.exit(status)
