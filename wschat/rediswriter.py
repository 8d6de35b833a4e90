"""The writer of room messages in cluster mode: one queue, a few batches in Redis at once. I/O.

`RedisStore.append` queues each `Append`; the writer sends what queued since its last send
as one batch, in order (like SQLite's group commit), up to `BATCH_MAX` messages,
`SCRIPT_BATCH` messages to a script call, all of a batch's calls in one write
(`wschat.redisscript.ScriptCall`). A reader task takes the answers in the order of the sends
(Redis runs one connection's commands in order), writes id, seq and epoch into each `Message`
and answers the batch's commands in one wake-up of the loop (`wschat.redisscript.answer`).

When the next batch goes (`Writer.may_send`): under a light load everything waits for the
answer in Redis, so what the clients send back together is stored, and then delivered,
together (a straggler sent alone splits every later delivery in two). Under a flood, while a
script call's worth is queued, up to `IN_FLIGHT` batches are in Redis: this process reads,
packs and answers while Redis runs the batches before and syncs its append-only file, instead
of each waiting for the other. Batches stay small (`BATCH_MAX`) because answering one holds the
loop: with one batch of 4,000 in Redis and one of 1,000, this process waited for Redis a fifth
of the time and Redis for it half the time (durable sends: 21,000 acks/s; 31,000 with these).

A failed batch answers `done(exc)` (the senders get `store_failed` and resend: a script that
did run is then a repeat); the sends made after it on the same connection fail with it. This
process delivers its own messages from the answers and skips their published copies, so the
rooms of a batch whose answer was lost are read again (`resync`, the broker's) once a later
batch is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from wschat.records import Message
from wschat.redisscript import ScriptCall, Sent, answer, answered
from wschat.store_base import Done, Notify

log = logging.getLogger("wschat.redisstore")

SCRIPT_BATCH = 500  # messages per script call: Redis runs nothing else meanwhile
BATCH_MAX = 3 * SCRIPT_BATCH  # messages a batch takes from the queue (a whole Append always)
IN_FLIGHT = 3  # batches in Redis at once, while a script call's worth is queued

Batch = list[tuple[list[Message], Done]]
Call = tuple[list[Any], list[Any]]  # a script call's keys and arguments


class Writer:
    """Stores queued messages in order through `script`; `call(chunk)` makes a call's keys and
    arguments, `health(ok)` hears whether the last batch reached Redis."""

    def __init__(
        self,
        script: ScriptCall,
        notify: Notify,
        call: Callable[[list[Message]], Call],
        health: Callable[[bool], None],
    ) -> None:
        self.script = script
        self.notify = notify
        self.call = call
        self.health = health
        self.queue: Batch = []  # waiting to be sent
        self.queued = 0  # messages in `queue`
        self.in_flight: deque[tuple[Batch, list[list[Message]], Sent | BaseException]] = deque()
        self.wake = asyncio.Event()  # `may_send` may have become true
        self.sender: asyncio.Task | None = None
        self.reader: asyncio.Task | None = None
        self.unsure: set[str] = set()  # rooms of a batch whose answer was lost
        self.resync: Callable[[set[str]], None] = lambda rooms: None  # the broker's, to read them again
        self.closed = False

    def append(self, messages: list[Message], done: Done) -> None:
        self.queue.append((messages, done))
        self.queued += len(messages)
        if self.sender is None:
            self.sender = asyncio.ensure_future(self._send_loop())
        elif self.may_send():
            self.wake.set()

    @property
    def idle(self) -> bool:
        return not self.queue and not self.in_flight

    def may_send(self) -> bool:
        """Something is queued, and nothing is in Redis (the last answers given and what came
        back for them read), or a script call's worth is queued and only one batch is in Redis."""
        if not self.queue:
            return False
        return not self.in_flight or (len(self.in_flight) < IN_FLIGHT and self.queued >= SCRIPT_BATCH)

    async def _send_loop(self) -> None:
        while not self.closed:  # as well as cancelled: see RedisBroker.closed
            if not self.may_send():
                self.wake.clear()
                await self.wake.wait()
                continue
            batch = self._take()
            messages = [m for msgs, _ in batch for m in msgs]
            chunks = [messages[at : at + SCRIPT_BATCH] for at in range(0, len(messages), SCRIPT_BATCH)]
            sent: Sent | BaseException
            try:
                sent = await self.script.send([self.call(chunk) for chunk in chunks])
            except (RedisError, OSError) as exc:
                sent = exc
            except Exception as exc:  # a bug: this batch fails, the writer goes on
                log.exception("internal error sending %d messages to Redis", len(messages))
                sent = exc
            self.in_flight.append((batch, chunks, sent))
            if len(self.in_flight) == 1:
                self.reader = asyncio.ensure_future(self._read_loop())

    def _take(self) -> Batch:
        """The next batch: the queue's head up to `BATCH_MAX` messages."""
        if self.queued <= BATCH_MAX:
            batch, self.queue, self.queued = self.queue, [], 0
            return batch
        taken = count = 0
        while count < BATCH_MAX:
            count += len(self.queue[taken][0])
            taken += 1
        batch, self.queue, self.queued = self.queue[:taken], self.queue[taken:], self.queued - count
        return batch

    async def _read_loop(self) -> None:
        while self.in_flight and not self.closed:
            batch, chunks, sent = self.in_flight[0]
            result: BaseException | None = None
            try:
                if isinstance(sent, BaseException):
                    raise sent
                for chunk, results in zip(chunks, await self.script.receive(sent), strict=True):
                    answered(chunk, results)
                self.health(True)
            except Exception as exc:  # Redis failed (or a bug: logged): this batch fails, the writer goes on
                if isinstance(exc, RedisError | OSError):
                    log.error("Redis failed (storing %d messages): %s", sum(map(len, chunks)), exc)
                else:
                    log.error("internal error storing %d messages", sum(map(len, chunks)), exc_info=exc)
                result = exc
                self.health(False)
                # The script may have run (or may still run) without this process hearing the
                # answer, and it skips its own published copies: read these rooms again later.
                self.unsure.update(m.room for chunk in chunks for m in chunk)
            if result is None and self.unsure:
                rooms, self.unsure = self.unsure, set()
                self.notify(self.resync, rooms)
            await answer(self.notify, batch, result)
            self.in_flight.popleft()
            if self.may_send():
                self.wake.set()

    async def aclose(self, timeout: float) -> None:
        """Let what is queued be stored (or refused) within `timeout`, then stop."""
        for _ in range(int(timeout * 100)):
            if self.idle:
                break
            await asyncio.sleep(0.01)
        self.closed = True
        self.wake.set()
        tasks = [t for t in (self.sender, self.reader) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1)
        await self.script.aclose()
