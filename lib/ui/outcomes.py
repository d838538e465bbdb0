"""How an outcome is shown: label, cause, who must act, the fix and a link to the guide."""

from __future__ import annotations

import streamlit as st

from lib.catalogue.outcomes import OUTCOMES
from lib.services.content.guide import anchor_url
from lib.services.history.status import NEVER_TESTED
from lib.services.reporting.connections_table import LABELS
from lib.ui.text import literal

_ICONS = {"success": ":material/check_circle:", "warning": ":material/warning:", "error": ":material/error:"}


def badge(outcome_key: str | None) -> str:
    return LABELS.get(outcome_key or NEVER_TESTED, LABELS[NEVER_TESTED])


def explain(outcome_key: str, detail: str) -> None:
    """The full story of one outcome, as an alert of the right kind."""
    outcome = OUTCOMES[outcome_key]
    detail = literal(detail)  # partly 8x8's own words: text, never Markdown
    if outcome.ok:
        text = f"**{outcome.label}**: {detail}" if detail else f"**{outcome.label}**"
    else:
        said = f"{detail}  \n" if detail else ""  # 8x8 may have said nothing
        text = (
            f"**{outcome.label}**: {outcome.cause}  \n{said}"
            f"**Who must act:** {outcome.actor.value}. **Fix:** {outcome.fix} "
            f"[Guide]({anchor_url(outcome.guide_anchor)})"
        )
    getattr(st, outcome.severity)(text, icon=_ICONS[outcome.severity])
