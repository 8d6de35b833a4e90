"""File sharing under load: upload throughput and the memory of parallel downloads.

Against a server under test (`--media-dir` in the bench's temporary folder):

- upload MB/s, one client: a file of `mb` random megabytes, from `upload_begin` to `upload_done`
  (so the SHA-256 check and the move into the store are included);
- upload MB/s, `clients` at once: each its own file of `mb / 2` MB (random bytes: nothing is
  stored once for several), the total over the time from the first `upload_begin` to the last
  `upload_done`;
- parallel downloads: `parallel` HTTP connections ask for the same `mb` MB file and read
  nothing; once each has its answer's head, the server's resident memory is compared with the
  figure before (the growth is what those downloads hold), then all are read to the end (MB/s
  over all of them, and a check that each got every byte).

The generator is this process (websockets and asyncio); its own CPU time is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def run(
    port: int, pid: int, *, mb: int, clients: int, parallel: int, timeout: float = 300.0
) -> dict[str, Any]:
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    figures = asyncio.run(asyncio.wait_for(_run(port, pid, mb, clients, parallel), timeout))
    after = resource.getrusage(resource.RUSAGE_SELF)
    figures["gen_cpu_s"] = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
    return figures


async def _run(port: int, pid: int, mb: int, clients: int, parallel: int) -> dict[str, Any]:
    one = os.urandom(mb * MB)
    started = time.perf_counter()
    url = await _upload(port, "bench-0", one)
    single = mb / (time.perf_counter() - started)
    each = [os.urandom(max(1, mb // 2) * MB) for _ in range(clients)]
    started = time.perf_counter()
    await asyncio.gather(*(_upload(port, f"bench-{i + 1}", data) for i, data in enumerate(each)))
    many = sum(len(d) for d in each) / MB / (time.perf_counter() - started)
    before = rss_mb(pid)
    conns = [await _ask(port, url) for _ in range(parallel)]
    grown = rss_mb(pid) - before
    started = time.perf_counter()
    sizes = await asyncio.gather(*(_read_all(r, w) for r, w in conns))
    down = sum(sizes) / MB / (time.perf_counter() - started)
    return {
        "file_mb": mb,
        "upload_mb_s_one": single,
        "upload_clients": clients,
        "upload_mb_s_many": many,
        "downloads": parallel,
        "download_rss_growth_mb": grown,
        "download_mb_s": down,
        "downloads_complete": all(s == len(one) for s in sizes),
    }


async def _upload(port: int, name: str, data: bytes) -> str:
    async with connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        await ws.send(json.dumps({"type": "set_username", "username": name}))
        await _until(ws, "username_accepted")
        sha = hashlib.sha256(data).hexdigest()
        begin = {"type": "upload_begin", "name": f"{name}.bin", "size": len(data), "sha256": sha, "to": name}
        await ws.send(json.dumps(begin))
        ready = await _until(ws, "upload_ready")
        head = bytes([len(ready["upload_id"])]) + ready["upload_id"].encode()
        step = ready["chunk_size"]
        view = memoryview(data)
        for at in range(ready["offset"], len(data), step):
            await ws.send(head + view[at : at + step])
        done = await _until(ws, "upload_done")
        return str(done["file"]["url"])


async def _until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == kind:
            return frame
        if frame["type"] == "error":
            raise RuntimeError(f"the server refused: {frame['message']}")


async def _ask(port: int, url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=65536)
    writer.write(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def _read_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    got = 0
    while data := await reader.read(1 << 20):
        got += len(data)
    writer.close()
    return got


def rows(run: Any) -> list[tuple[str, str, str, str, str, str]]:
    """The report's rows for a `files` run (bench/report.py)."""
    if run is None:
        return []
    f = run.figures
    if "upload_mb_s_one" not in f:
        return [("File sharing", "", "not run: " + "; ".join(run.notes), "–", "–", "")]
    rss = f["download_rss_growth_mb"]
    fits = rss < f["downloads"] * f["file_mb"] / 10
    return [
        (
            f"File upload over the WebSocket, MB/s: one client ({f['file_mb']} MB) / "
            f"{f['upload_clients']} clients at once",
            "",
            f"{f['upload_mb_s_one']:.0f} / {f['upload_mb_s_many']:.0f}",
            "no files",
            "–",
            "",
        ),
        (
            f"{f['downloads']} parallel downloads of a {f['file_mb']} MB file that nobody reads: "
            "server memory growth, MB (then MB/s reading them all)",
            f"≪ {f['downloads'] * f['file_mb']}",
            f"{rss:.1f} ({f['download_mb_s']:.0f} MB/s)",
            "no files",
            "–",
            "yes" if fits and f["downloads_complete"] and run.ok else "no",
        ),
    ]
