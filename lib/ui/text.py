"""Text that people typed (or 8x8 sent) shown as text, never as Markdown.

Streamlit renders Markdown in titles, captions, alerts, toasts and labels: a connection named
``[Session expired - sign in again](https://evil.example)`` would become a live link on every
screen that shows it. Every such value goes through :func:`literal` before it meets Markdown.
"""

from __future__ import annotations

import re
import unicodedata

# CommonMark lets a backslash escape any ASCII punctuation character: that disarms links,
# emphasis, code, HTML, tables, Streamlit's :color[...] and :icon: directives and $maths$.
#
# Escapes are not enough for what Streamlit (1.67) finds in the text after the Markdown is
# parsed, when escapes and character references (&#46;) are already plain characters again:
# bare URLs, www. names and e-mail addresses (remark-gfm's autolink literals), :shortcodes:
# (emoji, :material_…: icons, :streamlit:) and the arrows and signs it draws for "->", "<-",
# "--", "<=", ">=" and "~=". Each needs all its characters in one run of text, so the
# character that would complete one (every ':', '.' and '@', and the second character of each
# such pair) is put alone in ``:color[...]``: Streamlit's colour directive given no colour is a
# bare <span>, shown and copied as just that character. No invisible character is added, so
# what people copy from the page is what it shows.
_MARKUP = re.compile(r"(?P<alone>[:.@]|(?<=[-<>~])[-=>])|[!-/:-@\[-`{-~]")


def _written(match: re.Match[str]) -> str:
    return f":color[\\{match[0]}]" if match["alone"] else f"\\{match[0]}"


def literal(text: str) -> str:
    """``text`` written so that Markdown shows exactly these characters, on one line.

    Line breaks become spaces and the spaces and tabs at either end go (Markdown drops them,
    or reads four as code). Invisible format characters (Unicode category Cf: zero-width
    spaces and joiners, direction overrides) are left out: people would copy what they cannot
    see."""
    shown = "".join(c for c in " ".join(text.splitlines()) if unicodedata.category(c) != "Cf")
    return _MARKUP.sub(_written, shown.strip(" \t"))
