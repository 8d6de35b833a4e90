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


# Each module imported first, in one fresh interpreter: an import cycle that only one import order
# survives (a feature reaching the hub half-loaded) fails here, whatever the suite imported before.
_EACH_MODULE_FIRST = """
import importlib, pkgutil, sys, traceback
import wschat
names = sorted(m.name for m in pkgutil.walk_packages(wschat.__path__, "wschat."))
failed = []
for name in names:
    for loaded in [k for k in sys.modules if k == "wschat" or k.startswith("wschat.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=1).strip().splitlines()[-1])
print(len(names), "modules")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _EACH_MODULE_FIRST], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) > 50, result.stdout
