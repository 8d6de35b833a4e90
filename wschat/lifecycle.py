"""The server's start and stop: what it opens, in order, and closes again in reverse.

`start()` reads the certificate (`wschat.cli.server_tls`), opens the history (SQLite, memory or
Redis: `wschat.redismode.open_history`) and the hub on it, the cluster's links (--redis), the
media store, and the listening socket (`websockets.serve` with the `ChatConnection` transport,
dual-stack for `--host ::`, `SO_REUSEPORT` for --workers); a failure closes what was opened and
becomes one `StartupError` sentence. `stop()` tells everyone, commits what is queued, closes the
media store and every connection with 1001.

`Lifecycle` is a part of `ChatServer` (a mixin, as `wschat.output.Backpressure` is): it sets the
attributes the runtime in `wschat.server` then uses.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from websockets.asyncio.server import Server, serve
from websockets.http11 import Request, Response

from wschat import __version__
from wschat.admission import Admission, bind_error, dual_stack_socket
from wschat.cli import StartupError, hub_config, server_tls
from wschat.hub import Hub
from wschat.media import MediaStore
from wschat.redismode import Cluster, open_history
from wschat.routes import Routes, own_origins
from wschat.store import Store, StoreError
from wschat.transport import ChatConnection

CLOSE_TIMEOUT = 3.0  # seconds a peer has to answer our close frame before it is cut off


class Lifecycle:
    """`start()` and `stop()` of `ChatServer`; see the module docstring."""

    # set by ChatServer.__init__
    opts: argparse.Namespace
    admission: Admission
    ssl: ssl.SSLContext | None
    fingerprint: str
    tls_notes: list[str]
    notes: list[str]
    dual_stack: bool
    cluster: Cluster | None
    tasks: set[asyncio.Task]
    ws_server: Server | None
    port: int
    # set here
    loop: asyncio.AbstractEventLoop
    store: Store
    hub: Hub
    media: MediaStore
    routes: Routes
    old_handler: Any
    # the runtime's own (wschat.server)
    run: Callable[[Iterable[Any]], None]
    _flush: Callable[[], None]
    _spawn: Callable[[Any], None]
    _ticker: Callable[[], Coroutine[Any, Any, None]]
    _handler: Callable[[ChatConnection], Coroutine[Any, Any, None]]
    _process_request: Callable[[ChatConnection, Request], Response | None]

    async def start(self) -> None:
        opts = self.opts
        self.loop = asyncio.get_running_loop()
        note = self.admission.fit_descriptors()
        self.notes += [note] if note else []
        self.ssl, self.fingerprint, self.tls_notes = server_tls(opts)
        try:
            self.store, snapshot, self.cluster = await open_history(opts, self.loop.call_soon_threadsafe)
            self.hub = Hub(hub_config(opts), snapshot, broker=self.cluster.broker if self.cluster else None)
            if self.cluster:  # several processes, one chat (wschat.redismode)
                await self.cluster.start(self.run, self.hub)
        except StoreError as exc:
            await self._close_store()
            raise StartupError(str(exc)) from None
        try:
            self._open_media()
        except StartupError:
            await self._close_store()
            raise
        tls = self.ssl is not None
        self.routes = Routes(frozenset(), tls=tls, strict_origin=opts.strict_origin, stats=self._stats)
        try:
            self.ws_server = await self._listen()
        except OSError as exc:
            await self._close_store()
            raise StartupError(bind_error(exc, opts.host, opts.port)) from None
        self.port = self.ws_server.sockets[0].getsockname()[1]
        self.routes.origins = own_origins(opts.host, self.port, tls=tls) | frozenset(opts.allow_origin)
        self.routes.app.listening(opts, self.port, self.dual_stack, self.fingerprint)
        self.old_handler = self.loop.get_exception_handler()
        self.loop.set_exception_handler(self.admission.loop_exception)
        self._spawn(self._ticker())

    def _open_media(self) -> None:
        """The media store, after the database: a bad --db path is reported before a folder is made."""
        opts = self.opts
        try:
            self.media = MediaStore(
                opts.media_dir, self.loop.call_soon_threadsafe, quota_bytes=opts.media_quota_bytes
            )
        except OSError as exc:
            raise StartupError(
                f"Cannot use the media folder {opts.media_dir}: {exc.strerror or exc}."
            ) from None
        self.store.attach(dict.fromkeys(MediaStore.executors, self.media.execute))  # go through one execute()

    async def _listen(self) -> Server:
        opts = self.opts
        where: dict[str, Any] = {"host": opts.host, "port": opts.port}
        if opts.host == "::":
            sock, self.dual_stack = dual_stack_socket(opts.port)
            where = {"sock": sock}
        if opts.reuse_port and "host" in where:
            where["reuse_port"] = True  # --workers: the kernel spreads connections over them
        return await serve(
            self._handler,
            **where,
            process_request=self._process_request,
            create_connection=functools.partial(ChatConnection, self),  # type: ignore[arg-type]
            compression=None,
            max_size=opts.max_frame_bytes,
            open_timeout=opts.handshake_timeout,
            close_timeout=CLOSE_TIMEOUT,
            ping_interval=None,  # one sweep for all connections instead of a task each
            server_header=f"wschat/{__version__}",
            backlog=4096,
            ssl=self.ssl,
            **({"ssl_handshake_timeout": opts.handshake_timeout} if self.ssl else {}),
        )

    async def stop(self) -> None:
        """Tell everyone, store what is pending, close every connection with 1001."""
        if self.ws_server is None:
            return
        self.run(self.hub.shutdown_notice(time.time()))
        self._flush()
        await self._close_store()  # commits what is queued
        await asyncio.to_thread(self.media.close)
        await asyncio.sleep(0)  # deliver the acknowledgements that commit produced
        self._flush()
        for task in self.tasks:
            task.cancel()
        self.ws_server.close()
        try:
            await asyncio.wait_for(self.ws_server.wait_closed(), CLOSE_TIMEOUT + 1)
        except TimeoutError:
            # websockets closes only OPEN connections; one already CLOSING (we sent a close
            # whose task was just cancelled, the client never answered) would hold this forever.
            for ws in list(self.ws_server.all_connections):
                ws.transport.abort()
            await self.ws_server.wait_closed()
        self.ws_server = None
        self.loop.set_exception_handler(self.old_handler)

    async def _close_store(self) -> None:
        if self.cluster:
            await self.cluster.close()
        elif hasattr(self, "store"):
            await asyncio.to_thread(self.store.close)

    def _stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.hub.stats()
        if self.cluster:
            stats["redis"] = "ok" if self.cluster.reachable() else "unreachable"
        return stats
