"""Static checks of the two web pages: CSP hashes match the inline code, no HTML from strings,
nothing fetched from elsewhere. The browser tests (test_web_client.py) check the same pages live."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["chat-web-client.html", "websocket-demo.html"]


class PageParser(HTMLParser):
    """Collects the CSP meta, inline <script>/<style> text, and every tag with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.csp: str | None = None
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = a.get("content")
        if tag in ("script", "style"):
            self._open = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "script":
            self.scripts[-1] += data
        elif self._open == "style":
            self.styles[-1] += data


def parse(name: str) -> PageParser:
    p = PageParser()
    p.feed((ROOT / name).read_text(encoding="utf-8"))
    p.close()
    return p


def digest(text: str) -> str:
    # What the browser hashes: the element's text after parsing, which folds CRLF into LF.
    text = text.replace("\r\n", "\n")
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.mark.parametrize("name", PAGES)
def test_csp_meta_hashes_match_the_inline_script_and_style(name: str) -> None:
    page = parse(name)
    assert page.csp, f"{name} has no Content-Security-Policy meta"
    d = directives(page.csp)
    fix = "run `python tools/update_csp.py` after editing the page"
    assert len(page.scripts) == 1, "exactly one inline <script>"
    assert len(page.styles) == 1, "exactly one inline <style>"
    assert d.get("script-src") == [digest(page.scripts[0])], f"{name}: script hash is stale; {fix}"
    assert d.get("style-src") == [digest(page.styles[0])], f"{name}: style hash is stale; {fix}"
    assert d.get("default-src") == ["'none'"]
    assert set(d.get("connect-src", [])) <= {"ws:", "wss:", "'self'"}
    assert {"ws:", "wss:"} <= set(d["connect-src"])
    assert "'unsafe-inline'" not in page.csp and "'unsafe-eval'" not in page.csp


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_nothing_from_elsewhere(name: str) -> None:
    page = parse(name)
    for tag, attrs in page.tags:
        assert tag != "script" or "src" not in attrs, "no external scripts"
        assert not any(k.startswith("on") for k in attrs), f"inline handler on <{tag}>: CSP would block it"
        assert "style" not in attrs, f"style attribute on <{tag}>: CSP would block it"
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith(("data:", "#")), f"<{tag} {key}={value}> fetches"
    assert "@import" not in page.styles[0] and "url(" not in page.styles[0]
    for call in ("fetch(", "XMLHttpRequest", "import(", "eval(", "new Function"):
        assert call not in page.scripts[0], call


@pytest.mark.parametrize("name", PAGES)
def test_script_never_turns_strings_into_html(name: str) -> None:
    script = parse(name).scripts[0]
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment")
    for sink in sinks:
        assert sink not in script, f"{name} uses {sink}; text from the network must go into textContent"
    assert not re.search(r"setAttribute\(\s*['\"](on\w+|style|href|src)['\"]", script)
