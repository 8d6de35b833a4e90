"""The Hub: the chat state machine's entry points, rate limits and the store-result path. NO I/O.

This module imports neither asyncio nor websockets nor sqlite3. It knows connection ids, never
sockets. Every entry point takes the current time and returns a list of effects
(`wschat.effects`) for the runtime to carry out, in order.

Calling rule: call `connect()` when a WebSocket opens, `receive()` for each text frame,
`binary()` for each binary frame, `disconnect()` exactly once when it closes, `tick()` about
once a second, and `store_result(token, result, now)` with the result (or the exception) of
each `Execute(token, command)` effect. In cluster mode (a broker with `stored_seqs`), also
`arrived(message, now)` for each message the broker brings from the other processes and
`resync(room, now)` when it may have missed some (see `wschat.hub.cluster`), and
`taken_over(cid, now)` when a session of this process was taken over on another.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from wschat import outbound
from wschat import protocol as p
from wschat.broker import Broker, LocalBroker
from wschat.effects import Close, Effect, Execute, Send
from wschat.features import call_relay, calls, files, live, mod_hooks, profiles, session_watch
from wschat.features.account_book import Book
from wschat.features.mod_book import ModBook
from wschat.hub import cluster, devices, history, rooms, sessions
from wschat.hub.dedup import SentIds
from wschat.hub.handlers import HANDLERS, MESSAGE_KINDS, SELF_PACED
from wschat.hub.state import GENERAL, MAX_HELD, Config, Loading, Room, Session
from wschat.ratelimit import TokenBucket
from wschat.records import Command, Message, Snapshot

# what to call with a store result: continuation(hub, context, result, now) -> effects
Continuation = Callable[["Hub", Any, Any, float], list[Effect]]


class Hub:
    def __init__(
        self,
        config: Config | None = None,
        snapshot: Snapshot | None = None,
        *,
        broker: Broker | None = None,
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(18),
    ) -> None:
        self.config = config = config or Config()
        self.limits = p.Limits(max_message_chars=config.max_message_chars)
        self.new_token = new_token
        self.broker: Broker = broker or LocalBroker()
        snapshot = snapshot or Snapshot()
        self.sessions: dict[int, Session] = {}
        self.by_key: dict[str, int] = {}
        self.by_look: dict[str, int] = {}  # look-alike key -> connection holding such a name
        # name key -> every connection of that user, in log-in order, for users with two or
        # more (wschat.hub.devices)
        self.devices: dict[str, dict[int, None]] = {}
        # cid -> (connect time, deadline to choose a name); the deadline moves on with each refused
        # name, so a person retrying is not cut off, but never past 6 timeouts after connecting
        self.unnamed: dict[int, tuple[float, float]] = {}
        self.rooms: dict[str, Room] = {}  # loaded rooms, least recently used first
        # room being loaded -> who waits to enter it: (cid, resume position, resumed)
        self.loading: dict[str, list[tuple[int, p.Position | None, bool]]] = {}
        # requests about a room being loaded, from people waiting to enter it: replayed after
        self.held: dict[str, list[tuple[int, p.Request]]] = {}
        self.dormant: dict[str, None] = {}  # rooms with history, not loaded; most recent last
        self.window_bytes = 0  # all loaded rooms' windows together
        self.last_tick = 0.0
        self.next_id = snapshot.next_id
        self.next_private = 1
        self.run_id = new_token()[:6]
        self.epoch = snapshot.epoch or new_token()[:12]
        self.ids = SentIds(config.remembered_ids_per_user, config.remembered_ids)
        self.reads = live.Reads(snapshot.read_positions)  # read positions (wschat.features.live)
        self.asked: dict[int, tuple[Continuation, Any]] = {}  # token -> who waits for the store
        self.next_token = 1
        self.uploads = files.Uploads()  # file uploads in flight, and the daily quotas
        for name, state in snapshot.rooms.items():
            rooms.install(self, name, state)
        for name in snapshot.known_rooms:
            history.remember_dormant(self, name)
        for user_key, cmid, room_name, mid, seq in snapshot.sent_ids:
            self.ids.remember(user_key, cmid, room_name, str(mid), seq)
        if GENERAL not in self.rooms:
            rooms.install(self, GENERAL, None)
        self.accounts = Book(config, snapshot.accounts)  # wschat.features.accounts' state
        self.moderation = ModBook(snapshot.moderation)  # wschat.features.moderation's state
        self.calls = calls.CallBook()  # wschat.features.calls' state
        self.profiles = profiles.ProfileBook()  # wschat.features.profiles' state
        self.session_watch = session_watch.Watch()  # sessions ended by the host's admin command

    # ------------------------------------------------------------ entry points

    def connect(self, cid: int, now: float, address: str = "") -> list[Effect]:
        """A WebSocket opened; `address` is the peer's IP (per-address log-in limits)."""
        cfg = self.config
        self.sessions[cid] = Session(
            cid,
            client_id=f"c{cid:x}{self.new_token()[:6]}",
            chat_bucket=TokenBucket(cfg.chat_rate, cfg.chat_burst, now),
            control_bucket=TokenBucket(cfg.control_rate, cfg.control_burst, now),
            address=address,
        )
        self.unnamed[cid] = (now, now + self.config.name_timeout)
        return []

    def disconnect(self, cid: int, now: float) -> list[Effect]:
        files.disconnected(self, cid)
        return sessions.logout(self, cid, now)

    def receive(self, cid: int, text: str, now: float) -> list[Effect]:
        s = self.sessions.get(cid)
        if s is None:  # closed by the hub (takeover, flood); frames may still trickle in
            return []
        try:
            req = p.decode(text, self.limits)
        except p.ProtocolError as exc:
            wait = s.control_bucket.take(now)
            if wait:
                return self._limited(s, None, wait, exc.client_msg_id)
            return [self.error(s, exc.code, str(exc), exc.client_msg_id)]
        if type(req) in SELF_PACED:  # a budget of its own, taken by its handler (call frames)
            return self.handle(s, req, now)
        is_message = type(req) in MESSAGE_KINDS  # reactions and edits are paced like messages
        wait = (s.chat_bucket if is_message else s.control_bucket).take(now)
        if wait:
            return self._limited(s, req, wait, getattr(req, "client_msg_id", None))
        if now >= s.chat_bucket.promised_until and now >= s.control_bucket.promised_until:
            s.strikes = 0  # it waited as told: what it sent too fast before was not a flood
        return self.handle(s, req, now)

    def binary(self, cid: int, data: bytes, now: float) -> list[Effect]:
        """A binary frame: a piece of one of the connection's uploads (wschat.features.files)."""
        s = self.sessions.get(cid)
        if s is None:
            return []
        if s.name and (out := files.chunk(self, s, data, now)) is not None:
            return out  # not rate limited: one piece is read only once the last one is written
        if wait := s.control_bucket.take(now):
            return self._limited(s, None, wait, None)
        msg = "A binary frame must be a piece of one of your uploads (see upload_begin in PROTOCOL.md)."
        return [self.error(s, p.BINARY_UNSUPPORTED, msg)]

    def store_result(self, token: int, result: Any, now: float) -> list[Effect]:
        """The result of `Execute(token, command)`, or the exception the store raised for it."""
        return self.store_results((token,), result, now)

    def store_results(self, tokens: Sequence[int], result: Any, now: float) -> list[Effect]:
        """One answer for a merged batch (`Command.merge`): every token's continuation, in order.
        One call per batch, not per message: a call and a list per message cost ~0.7 us an ack."""
        asked = self.asked
        effects: list[Effect] = []
        for token in tokens:
            entry = asked.pop(token, None)
            if entry is not None:
                effects += entry[0](self, entry[1], result, now)
        return effects

    def arrived(self, m: Message, now: float) -> list[Effect]:
        """Cluster mode: a message another process stored (from the broker), in any order."""
        return cluster.arrived(self, m, now)

    def resync(self, room: str, now: float) -> list[Effect]:
        """Cluster mode: the broker may have missed messages of `room`; read them from the store."""
        return cluster.resync(self, room, now)

    def remote_presence(self, room: str, who: str, process: str, event: str, now: float) -> list[Effect]:
        """Cluster mode: `who` joined or left `room` on `process` (event: join, resume, leave, disconnect)."""
        return cluster.remote_presence(self, room, who, process, event, now)

    def remote_members(self, room: str, members: dict[str, str], now: float) -> list[Effect]:
        """Cluster mode: who is in `room` on the other processes (name -> process), from Redis."""
        return cluster.remote_members(self, room, members, now)

    def process_gone(self, process: str, now: float) -> list[Effect]:
        """Cluster mode: another process died; its users are gone."""
        return cluster.process_gone(self, process, now)

    def call_arrived(self, payload: bytes, now: float) -> list[Effect]:
        """Cluster mode: call frames another process relayed for users of this one."""
        return call_relay.arrived(self, payload, now)

    def taken_over(self, cid: int, now: float) -> list[Effect]:
        """Cluster mode: connection `cid`'s session was taken over on another process."""
        return sessions.taken_over(self, cid, now)

    def connections_of(self, key: str) -> tuple[int, ...]:
        """Every online connection here of the user with name key `key` (an account's devices)."""
        return devices.connections(self, key)

    def tick(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        sessions.expire_unnamed(self, now, out)
        self.accounts.tick(now)
        for room in self.rooms.values():
            if room.joined_count or room.left_count:
                rooms.flush_presence(self, room, now, out)
        out += live.tick(self, now)
        out += mod_hooks.tick(self, now)
        out += calls.tick(self, now)
        out += session_watch.tick(self, now)
        return out

    def shutdown_notice(self, now: float) -> list[Effect]:
        text = "The server is shutting down; your client will reconnect when it is back."
        everyone = tuple(cid for cid, s in self.sessions.items() if s.name)
        return [Send(everyone, outbound.system(text, now))]

    def stats(self) -> dict[str, int]:
        return {"connections": len(self.sessions), "users": len(self.by_key), "rooms": len(self.rooms)}

    # ------------------------------------------------------------ for the handlers

    def handle(self, s: Session, req: p.Request, now: float) -> list[Effect]:
        """Run the handler of `req`'s kind; hold it if it concerns a room being loaded."""
        entry = HANDLERS.get(type(req))
        if entry is None:  # a request kind without a handler: a bug, never another answer
            raise LookupError(f"no handler for {type(req).__name__}")
        handler, needs_name = entry
        cmid = getattr(req, "client_msg_id", None)
        if needs_name and not s.name:
            return [self.error(s, p.NOT_LOGGED_IN, "Choose a name first: send set_username.", cmid)]
        try:
            return handler(self, s, req, now)
        except Loading as wait:
            held = self.held.setdefault(wait.room, [])
            if len(held) < MAX_HELD:
                held.append((s.cid, req))
                return []
            text = f"#{wait.room} is still opening; send that again in a moment."
            return [self.error(s, p.RATE_LIMITED, text, cmid)]
        except p.ProtocolError as exc:
            return [self.error(s, exc.code, str(exc), exc.client_msg_id or cmid)]

    def ask(self, command: Command, continuation: Continuation, context: Any, holds: int = 0) -> Execute:
        """A store command; `continuation(hub, context, result, now)` runs when it is answered.

        `holds`: the connection the answer is for, whose further requests wait until then
        (see `wschat.effects.Execute`).
        """
        token = self.next_token
        self.next_token = token + 1
        self.asked[token] = (continuation, context)
        return Execute(token, command, holds)

    def error(self, s: Session, code: str, message: str, cmid: str | None = None) -> Send:
        return Send((s.cid,), outbound.error(code, message, client_msg_id=cmid))

    def store_failed(self, cid: int, message: str, cmid: str | None = None, room: str | None = None) -> Send:
        """`store_failed` to `cid`: the storage failed for what it asked; again after `store_retry` s."""
        retry = self.config.store_retry
        frame = outbound.error(p.STORE_FAILED, message, retry_after=retry, client_msg_id=cmid, room=room)
        return Send((cid,), frame)

    def _limited(self, s: Session, req: p.Request | None, wait: float, cmid: str | None) -> list[Effect]:
        """Refuse a frame sent too fast; past `flood_strikes` refusals in a row, close (1008)."""
        s.strikes += 1
        if s.strikes > self.config.flood_strikes:
            return [Close(s.cid, p.CLOSE_POLICY, "flooding: too many messages too fast")]
        retry = math.ceil((wait + 0.01) * 10) / 10  # rounded up: coming back on time must succeed
        text = f"You are sending too fast; wait {retry:g} s. Keep flooding and you will be disconnected."
        if isinstance(req, p.SetUsername):
            return [Send((s.cid,), outbound.username_error(p.RATE_LIMITED, text, retry))]
        return [Send((s.cid,), outbound.error(p.RATE_LIMITED, text, retry_after=retry, client_msg_id=cmid))]
