"""The terminal client's connection: connecting, one session from open to close, reconnecting.

`connection_loop` connects once a name is chosen (`wschat.reach.Connector`: trust in the
certificate, failures that are final), runs one `session` per connection (every text frame to
`ClientState.frame()` through `on_raw`, what it sends through one writer task), explains an
unusual close (`after_close`: taken over, session ended) and waits out the backoff schedule
(`wschat.commands.backoff`) before trying again.

`ConnectionLoop` is a part of `wschat.client.App` (a mixin); the rest of `App` (the keyboard,
the screen, quitting) is in `wschat.client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from wschat.address import Address
from wschat.clientauth import TokenFile
from wschat.clientstate import CLOSE_TAKEOVER, ClientState, Effect
from wschat.codes import CLOSE_SESSION_ENDED
from wschat.commands import backoff
from wschat.reach import Connector, GiveUp, connect_error
from wschat.render import escape, seconds

NORMAL_CLOSE = (1000, 1001, 1006)  # closes that need no explanation beyond "connection lost"


class ConnectionLoop:
    """The connection part of `App`; see the module docstring."""

    # App's own (wschat.client)
    state: ClientState
    address: Address
    connector: Connector
    loop: asyncio.AbstractEventLoop
    quitting: asyncio.Event
    tokens: TokenFile | None
    ws: ClientConnection | None
    outq: asyncio.Queue[str] | None
    say: Callable[..., None]
    apply: Callable[[list[Effect]], None]
    give_up: Callable[[int, str], None]
    until: Callable[[Callable[[], bool], float], Awaitable[bool]]

    async def connection_loop(self) -> None:
        st = self.state
        delays, attempt = backoff(), 0
        await self.until(lambda: not st.naming, float("inf"))
        if st.interactive:  # a script needs no progress report
            self.say(f"Connecting to {self.address.display}...")
        while True:
            await self.until(lambda: not st.naming, float("inf"))
            try:
                ws = await self.connector.open()
            except GiveUp as exc:  # retrying cannot help, and must not wear the user down
                self.give_up(exc.status, str(exc))
                return
            except Exception as exc:  # any other way of failing to connect is reported, then retried
                attempt += 1
                delay = next(delays)
                reason = connect_error(exc, self.address.url.startswith("wss:"))
                self.say(
                    f"Cannot reach {self.address.display}: {reason} - reconnecting in {seconds(delay)} "
                    f"(attempt {attempt})",
                    "offline",
                )
                await asyncio.sleep(delay)
                continue
            logins = st.logins
            await self.session(ws)
            if st.logins > logins:  # it worked for a while: start the schedule again
                delays, attempt = backoff(), 0
            if not self.after_close(ws.close_code or 1006, ws.close_reason or ""):
                return
            if st.naming:  # the server gave up waiting for a name: reconnect once one is typed
                continue
            attempt += 1
            delay = next(delays)
            self.say(f"Connection lost - reconnecting in {seconds(delay)} (attempt {attempt})", "offline")
            await asyncio.sleep(delay)

    def after_close(self, code: int, reason: str) -> bool:
        """Explain an unusual close; False if reconnecting would be wrong."""
        if code == CLOSE_TAKEOVER:
            self.give_up(1, "Another connection logged in with this name and took over; not reconnecting.")
            return False
        if code == CLOSE_SESSION_ENDED:  # revoked, or the password changed on another device
            if self.tokens is not None:
                self.tokens.save(None)
            again = f"run again with --login {self.state.name} to type your password"
            self.give_up(1, f"This device's session was ended (revoked, or the password changed); {again}.")
            return False
        if code not in NORMAL_CLOSE and reason:
            self.say(f"The server closed the connection: {reason}", "offline")
        return True

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
