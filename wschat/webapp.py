"""The installable web page and the printable join page: what the server answers at
`/manifest.webmanifest`, `/icons/...`, `/sw.js` and `/join`. NO I/O besides reading the
package's own files.

- The web app manifest (name, start URL, theme colour, icons) that lets a browser install the
  page; the icons are drawn here with Pillow (the page's favicon: a white speech bubble on the
  theme colour) by `tools/gen_icons.py`, and shipped as files in `wschat/static/icons/`.
- `sw.js`, the service worker (`wschat/static/sw.js`): on a secure origin it keeps the page, so
  an installed or reloaded page opens with the server down and says "Reconnecting" instead of a
  browser error.
- `/join`: a page to print or show on a screen, with a QR code (SVG) of the web client's address
  and the addresses to type.
- `page_file()`: where the pages are, in a checkout (the repository's root) or installed by pip
  (`wschat/static/`, where the build puts them).
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import html
import io
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wschat import qr
from wschat.banner import web_urls
from wschat.lan import instance_name

PACKAGE = Path(__file__).resolve().parent
STATIC = PACKAGE / "static"
THEME = "#4f46e5"  # the page's --accent
BACKGROUND = "#f4f5f9"  # the page's --bg
ICON_SIZES = (180, 192, 512)
SVG_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    f'<rect width="32" height="32" rx="9" fill="{THEME}"/>'
    '<path d="M9 10h14a2 2 0 0 1 2 2v7a2 2 0 0 1-2 2h-7l-5 4v-4H9a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2z" '
    'fill="white"/></svg>'
)


def page_file(name: str) -> Path:
    """A page or script served by the server: the checkout's copy, else the installed one."""
    here = PACKAGE.parent / name
    return here if here.exists() else STATIC / name


def manifest() -> bytes:
    icons = [{"src": f"icons/icon-{n}.png", "sizes": f"{n}x{n}", "type": "image/png"} for n in ICON_SIZES[1:]]
    icons += [
        {"src": "icons/icon.svg", "sizes": "any", "type": "image/svg+xml"},
        {"src": "icons/maskable-512.png", "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
    ]
    data = {
        "name": "wschat",
        "short_name": "wschat",
        "description": "Chat with the people on this network.",
        "id": "/",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": BACKGROUND,
        "theme_color": THEME,
        "icons": icons,
    }
    return json.dumps(data, indent=1).encode()


def icon_png(size: int, *, maskable: bool = False) -> bytes:
    """The icon drawn at `size` pixels: the favicon's bubble, drawn four times larger and scaled
    down (smooth edges). A maskable icon fills the square and keeps the bubble in the middle
    80 %, which any mask shape leaves visible."""
    from PIL import Image, ImageDraw  # only when an icon is first asked for

    big = size * 4
    s = big / 32  # the SVG's units
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    if maskable:
        draw.rectangle((0, 0, big, big), fill=THEME)
        s *= 0.8
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=round(9 * s), fill=THEME)
    off = (big - 32 * s) / 2

    def at(x: float, y: float) -> tuple[float, float]:
        return off + x * s, off + y * s

    draw.rounded_rectangle((*at(7, 10), *at(25, 21)), radius=round(2 * s), fill="white")
    draw.polygon([at(16, 20.5), at(11, 25), at(11, 20.5)], fill="white")
    out = io.BytesIO()
    img.resize((size, size), Image.Resampling.LANCZOS).save(out, "PNG", optimize=True)
    return out.getvalue()


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


JOIN_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 40rem; padding: 0 1rem;
  color: #161a23; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
.code { text-align: center; margin: 1.5rem 0; }
.code svg { display: block; margin: 0 auto; width: min(22rem, 90vw); height: auto; }
.url { font: 600 1.25rem/1.4 ui-monospace, monospace; word-break: break-all; }
li { margin: .3rem 0; }
code { font: .95rem ui-monospace, monospace; background: #eef0f5; padding: .1rem .3rem; border-radius: 4px; }
@media print { body { margin: 0 auto; } .code svg { width: 12cm; } }
"""


def join_page(urls: list[str], *, tls: bool, fingerprint: str = "", name: str = "wschat") -> bytes:
    """The printable page: a QR code of the first web address, every address, the terminal command."""
    first = urls[0]
    items = "".join(f'<li><a href="{html.escape(u)}">{html.escape(u)}</a></li>' for u in urls)
    scheme = "wss://" if tls else ""
    terminal = html.escape(f"python chat-client.py {scheme}{first.split('://', 1)[1].rstrip('/')}")
    cert = (
        f"<p>Certificate SHA-256 fingerprint (compare it with the one the browser shows):<br>"
        f"<code>{html.escape(fingerprint)}</code></p>"
        if fingerprint
        else ""
    )
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Join {html.escape(name)}</title>
<style>{JOIN_STYLE}</style>
</head>
<body>
<h1>Join {html.escape(name)}</h1>
<p>Point a phone's camera at the code, or open the address in a browser on this network.</p>
<div class="code">{qr.svg(first)}<div class="url">{html.escape(first)}</div></div>
<h2>Addresses</h2>
<ul>{items}</ul>
<p>From a terminal: <code>{terminal}</code>, or just <code>python chat-client.py</code>, which lists
the chat servers it finds on this network.</p>
{cert}
</body>
</html>
"""
    return body.encode()


JOIN_CSP = f"default-src 'none'; style-src {csp_hash(JOIN_STYLE)}; base-uri 'none'; form-action 'none'"


@dataclass
class AppFiles:
    """The files of the installable page and /join, answered by path."""

    tls: bool
    urls: Callable[[], list[str]] = list  # the web client's addresses, once the server listens
    fingerprint: str = ""
    name: str = "wschat"  # the instance name it is announced by (--name)
    cache: dict[str, bytes] = field(default_factory=dict)

    PATHS = ("/manifest.webmanifest", "/sw.js", "/join", "/icons/icon.svg")

    def listening(self, opts: argparse.Namespace, port: int, dual_stack: bool, fingerprint: str) -> None:
        """The server listens: /join can name it and its addresses."""
        self.urls = functools.partial(web_urls, opts.host, port, tls=self.tls, dual_stack=dual_stack)
        self.fingerprint = fingerprint
        self.name = instance_name(opts.name, socket.gethostname())

    def handles(self, path: str) -> bool:
        return path in self.PATHS or path in _PNG_ICONS

    def get(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        """(status, content type, body, extra headers) for a path that `handles()`."""
        if path == "/manifest.webmanifest":
            return 200, "application/manifest+json", manifest(), {"Cache-Control": "no-cache"}
        if path == "/sw.js":
            # no-cache: a changed service worker reaches browsers at their next visit
            return 200, "text/javascript; charset=utf-8", _static("sw.js"), {"Cache-Control": "no-cache"}
        if path == "/join":
            urls = self.urls() or ["http://localhost/"]
            page = join_page(urls, tls=self.tls, fingerprint=self.fingerprint, name=self.name)
            headers = {"Cache-Control": "no-cache", "Content-Security-Policy": JOIN_CSP}
            return 200, "text/html; charset=utf-8", page, {**headers, "X-Frame-Options": "DENY"}
        if path == "/icons/icon.svg":
            return 200, "image/svg+xml", SVG_ICON.encode(), {"Cache-Control": "max-age=86400"}
        return 200, "image/png", _static(path.lstrip("/")), {"Cache-Control": "max-age=86400"}


# The PNG icons are drawn by icon_png() ahead of time (python tools/gen_icons.py) and shipped in
# wschat/static/icons/: drawing one takes up to a third of a second, too long for the event loop.
PNG_ICONS = {f"icons/icon-{n}.png": (n, False) for n in ICON_SIZES}
PNG_ICONS["icons/maskable-512.png"] = (512, True)
_PNG_ICONS = {"/" + name for name in PNG_ICONS}


@functools.cache
def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()
