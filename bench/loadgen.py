"""Build and run the compiled load generator (bench/loadgen.c).

`build()` compiles it with the system C compiler into bench/build/ (gitignored) the first time,
and again whenever the source is newer than the binary. `run()` starts it, answers its pauses
(idle mode prints an "event" line and waits for a line on stdin), and returns its final JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "loadgen.c"
BINARY = HERE / "build" / "loadgen"


class BuildError(RuntimeError):
    """The load generator could not be compiled; str(self) says why."""


def build() -> Path:
    """The path of the compiled generator, compiling it first if needed."""
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BuildError("No C compiler found: install gcc (Debian: apt-get install gcc) or set CC.")
    BINARY.parent.mkdir(exist_ok=True)
    tmp = BINARY.with_suffix(".tmp")
    proc = subprocess.run(
        [cc, "-O2", "-Wall", "-o", str(tmp), str(SOURCE)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(f"Compiling {SOURCE.name} failed:\n{proc.stderr}")
    tmp.replace(BINARY)
    return BINARY


@dataclass
class Result:
    """What one run of the generator printed: its final JSON and any pause events."""

    argv: list[str]
    data: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""
    returncode: int = 0

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def run(args: list[str], *, prefix: list[str] | None = None, timeout: float = 120.0) -> Result:
    """Run the generator with `args` (behind `prefix`, e.g. taskset); bounded by `timeout`."""
    argv = [*(prefix or []), str(build()), *args]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    events: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    # The generator bounds itself with --timeout; the watchdog is for a generator that hangs.
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            obj = json.loads(line)
            if "event" in obj:
                events.append(obj)
                proc.stdin.write("\n")
                proc.stdin.flush()
            else:
                final = obj
        proc.wait(timeout)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    if final is None:
        raise RuntimeError(f"the load generator printed no result (exit {proc.returncode}): {stderr[-2000:]}")
    return Result(argv, final, events, stderr, proc.returncode)
