"""The error boundary: an unexpected error shows a reference, never its text or traceback."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from lib.kernel.errors import SwitchboardError
from lib.ui.text import literal

log = logging.getLogger("switchboard.ui")


@contextmanager
def error_boundary() -> Iterator[None]:
    """Catch anything unexpected, log it (redacted) under a correlation id, show only the id.

    Streamlit's own control flow (st.stop, st.rerun) derives from BaseException and passes.
    """
    try:
        yield
    except SwitchboardError as exc:  # written for people: says what is wrong and who must act
        st.error(literal(str(exc)), icon=":material/block:")  # it may quote names people typed
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("unexpected error, reference %s", reference)
        st.error(
            f"Something went wrong and nothing more was done. Reference: `{reference}`. "
            "Give this reference to a Switchboard admin; the details are in the server log.",
            icon=":material/error:",
        )
