"""Text that people typed (or 8x8 sent) shown as text, never as Markdown.

Streamlit renders Markdown in titles, captions, alerts, toasts and labels: a connection named
``[Session expired - sign in again](https://evil.example)`` would become a live link on every
screen that shows it. Every such value goes through :func:`literal` before it meets Markdown.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation character: that disarms links,
# emphasis, code, HTML, tables, Streamlit's :color[...] and :icon: directives and $maths$.
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")
# Bare URLs, www. names and e-mail addresses are linked from the rendered text, escaped or
# not (seen in Chromium on Streamlit 1.67); an invisible word joiner before their ':', '.'
# and '@' keeps them from being recognised.
WORD_JOINER = "\u2060"
_BREAK_BEFORE = frozenset(":.@")


def literal(text: str) -> str:
    """``text`` written so that Markdown shows exactly these characters, on one line."""
    return _PUNCTUATION.sub(lambda m: (WORD_JOINER if m[0] in _BREAK_BEFORE else "") + "\\" + m[0],
                            " ".join(text.splitlines()))
