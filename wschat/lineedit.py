"""A small line editor for the terminal client: keys in, the line being typed out. NO I/O.

Why it exists: `aioconsole.ainput()` leaves editing to the terminal's own line discipline
(canonical mode), where the text being typed lives in the kernel and the program cannot see it.
When a message arrives mid-typing it is printed into the middle of the half-typed line and the
program cannot redraw it. So on an interactive terminal the client switches echo and canonical
mode off, feeds every key to this editor and redraws the prompt and the typed text below each
incoming line. (Piped input and non-terminals still go through aioconsole.)

This module imports nothing that touches a terminal: `feed()` takes decoded text and returns what
happened (`Submitted` lines, `EndOfInput`, and `Edited` when the line being typed is no longer
what it was: the client may tell others that its user is typing), and `render()` returns the
characters that redraw the input line for a given width.

Keys: printable text inserts at the cursor; Enter submits; Backspace, Delete, Left/Right,
Home/End (also Ctrl+A/E), Ctrl+B/F, Alt+B/F and Ctrl+Left/Right (words), Ctrl+U/K (cut to
start/end), Ctrl+W and Alt+Backspace (cut a word), Up/Down (also Ctrl+P/N: earlier lines),
Ctrl+D (end of input on an empty line, else delete). Other control keys and unknown escape
sequences are ignored, so nothing typed or pasted can put a control character into a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wschat.render import char_width, display_width

HISTORY_KEPT = 200


@dataclass(frozen=True, slots=True)
class Submitted:
    line: str


@dataclass(frozen=True, slots=True)
class EndOfInput:
    pass


@dataclass(frozen=True, slots=True)
class Edited:
    """The line being typed changed (after any `Submitted` of the same `feed()`); it is `line`."""

    line: str


Event = Submitted | EndOfInput | Edited


class LineEditor:
    def __init__(self) -> None:
        self.chars: list[str] = []
        self.pos = 0  # cursor, as an index into chars
        self.scroll = 0  # first char shown when the line is wider than the terminal
        self.history: list[str] = []
        self.hist_pos = 0  # == len(history) when editing a new line
        self.draft: list[str] = []
        self.pending = ""  # an escape sequence split across two reads

    @property
    def text(self) -> str:
        return "".join(self.chars)

    # ------------------------------------------------------------ keys

    def feed(self, data: str) -> list[Event]:
        events: list[Event] = []
        before = self.text
        data = self.pending + data
        self.pending = ""
        i, n = 0, len(data)
        while i < n:
            ch = data[i]
            if ch == "\x1b":
                end = _escape_end(data, i)
                if end is None:  # incomplete: wait for the rest
                    self.pending = data[i:]
                    break
                action = _ESCAPES.get(data[i:end])
                if action is not None:
                    action(self)
                i = end
                continue
            i += 1
            if ch in "\r\n":
                if ch == "\r" and i < n and data[i] == "\n":
                    i += 1
                events.append(Submitted(self._submit()))
                before = ""
            elif ch == "\x04" and not self.chars:  # Ctrl+D on an empty line
                events.append(EndOfInput())
            elif (action := _CONTROLS.get(ch)) is not None:
                action(self)
            elif ch.isprintable() or ch == " ":
                self.chars.insert(self.pos, ch)
                self.pos += 1
            # anything else (Tab, Ctrl+L, other controls) is ignored
        if self.text != before:
            events.append(Edited(self.text))
        return events

    def _left(self) -> None:
        self.pos = max(0, self.pos - 1)

    def _right(self) -> None:
        self.pos = min(len(self.chars), self.pos + 1)

    def _home(self) -> None:
        self.pos = 0

    def _end(self) -> None:
        self.pos = len(self.chars)

    def _cut_to_start(self) -> None:
        del self.chars[: self.pos]
        self.pos = 0

    def _cut_to_end(self) -> None:
        del self.chars[self.pos :]

    def _older(self) -> None:
        self._recall(-1)

    def _newer(self) -> None:
        self._recall(1)

    def _word_left(self) -> None:
        self.pos = self._word_start()

    def _word_right(self) -> None:
        self.pos = self._word_end()

    # ------------------------------------------------------------ editing

    def _submit(self) -> str:
        line = self.text
        if line.strip() and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[:-HISTORY_KEPT]
        self.chars, self.pos, self.scroll = [], 0, 0
        self.hist_pos, self.draft = len(self.history), []
        return line

    def _backspace(self) -> None:
        if self.pos:
            self.pos -= 1
            del self.chars[self.pos]

    def _delete(self) -> None:
        if self.pos < len(self.chars):
            del self.chars[self.pos]

    def _word_start(self) -> int:
        i = self.pos
        while i and self.chars[i - 1] == " ":
            i -= 1
        while i and self.chars[i - 1] != " ":
            i -= 1
        return i

    def _word_end(self) -> int:
        i, n = self.pos, len(self.chars)
        while i < n and self.chars[i] == " ":
            i += 1
        while i < n and self.chars[i] != " ":
            i += 1
        return i

    def _cut_word(self) -> None:
        start = self._word_start()
        del self.chars[start : self.pos]
        self.pos = start

    def _recall(self, step: int) -> None:
        target = self.hist_pos + step
        if not 0 <= target <= len(self.history):
            return
        if self.hist_pos == len(self.history):
            self.draft = self.chars
        self.hist_pos = target
        self.chars = list(self.history[target]) if target < len(self.history) else list(self.draft)
        self.pos = len(self.chars)

    # ------------------------------------------------------------ display

    def render(self, prompt: str, width: int) -> str:
        """Characters that redraw the input line: back to column 0, clear it, prompt, the visible
        part of the text (scrolled sideways if it is wider than the terminal), cursor in place."""
        width = max(width, 2)
        if width - display_width(prompt) < 12:  # too narrow for both: the text matters more
            prompt = ""
        room = width - display_width(prompt) - 1  # the last column would wrap the line
        widths = [char_width(c) for c in self.chars]
        if sum(widths) <= room:
            self.scroll = 0
        elif self.pos < self.scroll:
            self.scroll = self.pos
        while self.scroll < self.pos and sum(widths[self.scroll : self.pos]) > room:
            self.scroll += 1
        shown, used, end = [], 0, self.scroll
        while end < len(self.chars) and used + widths[end] <= room:
            shown.append(self.chars[end])
            used += widths[end]
            end += 1
        back = sum(widths[self.pos : end])
        move = f"\x1b[{back}D" if back else ""
        return f"\r\x1b[K{prompt}{''.join(shown)}{move}"


_CONTROLS: dict[str, Callable[[LineEditor], None]] = {
    "\x04": LineEditor._delete,  # Ctrl+D on a line with text
    "\x7f": LineEditor._backspace,
    "\x08": LineEditor._backspace,
    "\x01": LineEditor._home,  # Ctrl+A
    "\x05": LineEditor._end,  # Ctrl+E
    "\x02": LineEditor._left,  # Ctrl+B
    "\x06": LineEditor._right,  # Ctrl+F
    "\x15": LineEditor._cut_to_start,  # Ctrl+U
    "\x0b": LineEditor._cut_to_end,  # Ctrl+K
    "\x17": LineEditor._cut_word,  # Ctrl+W
    "\x10": LineEditor._older,  # Ctrl+P
    "\x0e": LineEditor._newer,  # Ctrl+N
}

_ESCAPES: dict[str, Callable[[LineEditor], None]] = {
    **dict.fromkeys(("\x1b[D", "\x1bOD"), LineEditor._left),
    **dict.fromkeys(("\x1b[C", "\x1bOC"), LineEditor._right),
    **dict.fromkeys(("\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~"), LineEditor._home),
    **dict.fromkeys(("\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~"), LineEditor._end),
    "\x1b[3~": LineEditor._delete,
    **dict.fromkeys(("\x1b[A", "\x1bOA"), LineEditor._older),
    **dict.fromkeys(("\x1b[B", "\x1bOB"), LineEditor._newer),
    **dict.fromkeys(("\x1bb", "\x1b[1;5D", "\x1b[1;3D"), LineEditor._word_left),
    **dict.fromkeys(("\x1bf", "\x1b[1;5C", "\x1b[1;3C"), LineEditor._word_right),
    **dict.fromkeys(("\x1b\x7f", "\x1b\x08"), LineEditor._cut_word),
}


def _escape_end(data: str, i: int) -> int | None:
    """End index of the escape sequence starting at data[i] (ESC), or None if it is incomplete."""
    n = len(data)
    if i + 1 >= n:
        return None
    nxt = data[i + 1]
    if nxt == "[":  # CSI: parameters, then one final byte in @..~
        j = i + 2
        while j < n and not ("@" <= data[j] <= "~"):
            j += 1
        return None if j >= n else j + 1
    if nxt == "O":  # SS3: one more character
        return None if i + 2 >= n else i + 3
    return i + 2  # Alt+key
