"""How an outcome is shown: label, cause, who must act, the fix and a link to the guide."""

from __future__ import annotations

import streamlit as st

from lib.guide import anchor_url
from lib.products import OUTCOMES
from lib.ui.text import literal

_KIND = {"ok": "success", "missing_config": "warning", "rate_limited": "warning"}


def badge(outcome_key: str | None) -> str:
    if outcome_key is None or outcome_key not in OUTCOMES:
        return "Never tested"
    outcome = OUTCOMES[outcome_key]
    return f"{outcome.icon} {outcome.label}"


def explain(outcome_key: str, detail: str) -> None:
    """The full story of one outcome, as an alert of the right kind."""
    outcome = OUTCOMES[outcome_key]
    detail = literal(detail)  # partly 8x8's own words: text, never Markdown
    if outcome.ok:
        st.success(f"**{outcome.label}**: {detail}", icon=":material/check_circle:")
        return
    text = (f"**{outcome.label}**: {outcome.cause}  \n{detail}  \n"
            f"**Who must act:** {outcome.actor.value}. **Fix:** {outcome.fix} "
            f"[Guide]({anchor_url(outcome.guide_anchor)})")
    kind = _KIND.get(outcome_key, "error")
    getattr(st, kind)(text, icon=":material/warning:" if kind == "warning" else ":material/error:")
