"""The yardstick: a chat server written the way the seed project wrote it. Not for use.

One coroutine per connection on the same websockets version as wschat; a broadcast awaits each
send in turn (one write per delivery); every join and leave sends the full user list to
everyone (O(N) bytes per recipient, O(N^2) per join). No rate limits, no store, no rooms. It
speaks the seed protocol, which the load generator speaks too, so both servers are measured
with the same clients in the same run and every figure is also a ratio.

It is deliberately left naive: improving it would make the ratios meaningless.

    python bench/seed_server.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from datetime import datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

clients: dict[ServerConnection, str] = {}
history: list[dict[str, Any]] = []


async def broadcast(message: dict[str, Any]) -> None:
    data = json.dumps(message)
    for ws in list(clients):
        with contextlib.suppress(ConnectionClosed):
            await ws.send(data)


async def handler(ws: ServerConnection) -> None:
    username = None
    try:
        async for raw in ws:
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            kind = data.get("type")
            if kind == "set_username":
                name = str(data.get("username", "")).strip()
                if not name or name in clients.values():
                    error = {"type": "username_error", "message": "Username is already taken"}
                    await ws.send(json.dumps(error))
                    continue
                username = clients[ws] = name
                accepted = {
                    "type": "username_accepted",
                    "username": name,
                    "client_id": str(id(ws)),
                    "message": f"Welcome, {name}!",
                }
                await ws.send(json.dumps(accepted))
                if history:
                    await ws.send(json.dumps({"type": "history", "messages": history}))
                await broadcast(
                    {
                        "type": "user_join",
                        "username": name,
                        "message": f"{name} joined the chat",
                        "timestamp": datetime.now().isoformat(),
                        "online_users": len(clients),
                        "users_list": list(clients.values()),
                    }
                )
            elif kind == "chat" and username:
                message = {
                    "type": "chat",
                    "message": str(data.get("message", "")),
                    "username": username,
                    "timestamp": datetime.now().isoformat(),
                    "client_id": str(id(ws)),
                }
                history.append(message)
                del history[:-50]
                await broadcast(message)
            elif kind == "get_users":
                users = list(clients.values())
                await ws.send(json.dumps({"type": "online_users", "users": users, "count": len(users)}))
    except ConnectionClosed:
        pass
    finally:
        if ws in clients:
            name = clients.pop(ws)
            await broadcast(
                {
                    "type": "user_leave",
                    "username": name,
                    "message": f"{name} left the chat",
                    "timestamp": datetime.now().isoformat(),
                    "online_users": len(clients),
                    "users_list": list(clients.values()),
                }
            )


async def main(host: str, port: int) -> None:
    # The accept backlog is wschat's (the default, 100, overflows in a join storm and the kernel's
    # SYN retries would measure a queue size instead of the design).
    async with serve(handler, host, port, backlog=4096) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"Starting WebSocket chat server on ws://{host}:{bound}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="The seed-style yardstick server (benchmark only).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    asyncio.run(main(args.host, args.port))
