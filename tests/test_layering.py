"""The layering is enforced: `lint-imports` keeps every contract in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support import ROOT


def lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [exe, "--no-cache", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_import_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_websockets_internals_contract_catches_an_import_outside_the_transport(tmp_path: Path) -> None:
    pkg = tmp_path / "layered"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "transport.py").write_text("from websockets.frames import Frame\n")
    (pkg / "page.py").write_text("import websockets.streams\n")
    (pkg / "view.py").write_text(
        "from websockets import utils\nfrom websockets.exceptions import ConnectionClosed\n"
    )
    (pkg / "fine.py").write_text("from websockets.asyncio.client import connect\n")
    (tmp_path / "layered.toml").write_text(
        "[tool.importlinter]\n"
        'root_package = "layered"\n'
        "include_external_packages = true\n"
        'contract_types = ["external_submodules: tools.import_contracts.ExternalSubmodulesContract"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "internals"\n'
        'type = "external_submodules"\n'
        'package = "websockets"\n'
        'submodules = ["frames", "protocol", "utils", "streams"]\n'
        'allowed_importers = ["layered.transport"]\n'
    )
    result = lint_imports(tmp_path, "--config", "layered.toml")
    assert result.returncode == 1
    assert "layered.page:1: import websockets.streams" in result.stdout
    assert "layered.view:1: from websockets import utils" in result.stdout
    assert "layered.transport" not in result.stdout and "layered.fine" not in result.stdout


# Each module imported first, from a fresh state: an import cycle that only one import order
# survives (a feature reaching the hub half-loaded) fails here, whatever the suite imported before.
# Only the modules in a cycle need a fresh state each (tests/importfirst.py says why); they are
# shared out between processes.


def import_each_first(package: str, cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    parts = max(2, min(4, os.cpu_count() or 1))
    script = str(ROOT / "tests" / "importfirst.py")
    env = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    runs = [
        subprocess.Popen(
            [sys.executable, script, package, str(part), str(parts)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part in range(parts)
    ]
    done = []
    try:
        for run in runs:
            out, err = run.communicate(timeout=120)
            done.append(subprocess.CompletedProcess(run.args, run.returncode, out, err))
    finally:
        for run in runs:  # none left behind if one of them hung
            if run.poll() is None:
                run.kill()
                run.wait()
    return done


def test_every_module_imports_on_its_own() -> None:
    for result in import_each_first("wschat", ROOT):
        assert result.returncode == 0, result.stdout + result.stderr
        modules, _, rest = result.stdout.partition(" modules, ")
        assert int(modules) > 50 and int(rest.split()[0]) > 10, result.stdout


def test_a_cycle_that_fails_when_entered_by_one_of_its_modules_is_caught(tmp_path: Path) -> None:
    """`a` imports `b`, which takes a name from `a`: fine when `b` comes first, a half-loaded `a`
    when `a` does. `c` enters the cycle by `b` and `z` by `a` (which is what fails: `a` first);
    `leaf` is in no cycle."""
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc import b\nX = 1\n")
    (pkg / "b.py").write_text("from cyc.a import X\n")
    (pkg / "c.py").write_text("from cyc import b\n")
    (pkg / "leaf.py").write_text("import json\n")
    (pkg / "z.py").write_text("import cyc.a\n")
    results = import_each_first("cyc", tmp_path)
    out = "".join(r.stdout for r in results)
    assert all(r.stdout.startswith("5 modules, 2 in import cycles") for r in results), out
    assert [r.returncode for r in results].count(1) >= 1
    failed = sorted(line.split(":")[0] for line in out.splitlines()[1:] if ":" in line)
    assert failed == ["cyc.a"], out
    assert "partially initialized module 'cyc.a'" in out
