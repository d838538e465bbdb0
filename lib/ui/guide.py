"""Renders the setup guide from lib.services.content.guide: numbered, anchored steps and our own SVGs."""

from __future__ import annotations

import streamlit as st

from lib.services.content.guide import (
    ILLUSTRATIONS,
    STEPS,
    TROUBLESHOOTING_ANCHOR,
    product_sections,
    troubleshooting_entries,
)


def _illustration(name: str) -> None:
    # Shipped with the app and inlined: nothing is loaded from the internet.
    st.image((ILLUSTRATIONS / name).read_text(encoding="utf-8"))


def render() -> None:
    st.title("Setup guide", anchor="setup-guide")
    st.markdown(
        "How to get the credentials of an 8x8 **API app** and link them to Switchboard, "
        "step by step. Every problem Switchboard reports links to the entry below that fixes it."
    )
    for number, step in enumerate(STEPS, start=1):
        st.header(f"{number}. {step.title}", anchor=step.anchor, divider="gray")
        st.markdown(step.body.strip())
        if step.illustration:
            _illustration(step.illustration)
        if step.anchor == "choose-products":
            for anchor, title, body in product_sections():
                st.subheader(title, anchor=anchor)
                st.markdown(body)
    st.header("Troubleshooting", anchor=TROUBLESHOOTING_ANCHOR, divider="gray")
    st.markdown(
        "Each test result in Switchboard is one of these. The detail shown with a result adds "
        "what 8x8 said, when it said anything."
    )
    for anchor, title, body in troubleshooting_entries():
        st.subheader(title, anchor=anchor)
        st.markdown(body)
