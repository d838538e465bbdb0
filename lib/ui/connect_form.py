"""The connect form: add a connection or edit one, verifying with 8x8 before anything is saved.

The Client Secret is a password field that is never pre-filled. Its value is taken out of
session state inside the submit callback, before the verify call, so it lives in the session
for the length of one callback and never reaches the browser again. So a refused submit comes
back with the field empty, and says so under it: paste it again. Everything that can be refused
without 8x8 is refused before the secret is sent there (lib.services.connections.linking.save).

The connection being edited is named in the page's address (``/connect?edit=NAME``), so a
reload, a bookmark or a link goes on editing it; nothing else of the form is in the address.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import streamlit as st
from pydantic import SecretStr

from lib.catalogue.limits import NAME_MAX
from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS, SETTINGS
from lib.eightbyeight.prober import ProberClosed
from lib.kernel.errors import ConflictError, NotFoundError, ValidationError
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import FIELD_LABELS, ConnectionInput, ConnectionView, linking
from lib.services.content.guide import anchor_url
from lib.services.guard.access import Permission, Principal
from lib.services.runtime import Runtime
from lib.ui.context import Console, acting, prober, take_secret
from lib.ui.outcomes import badge, explain
from lib.ui.text import literal

EDIT_PARAM = "edit"  # /connect?edit=NAME edits that connection (the Connections page's Edit button)
_FLASH, _SAVED, _OFFER_SKIP, _LOADED = "connect.flash", "connect.saved_id", "connect.offer_skip", "connect.loaded"


def _key(field: str) -> str:
    return f"connect_{field}"


_SECRET = _key("client_secret")


def _needed_settings(products: list[str]) -> list[str]:
    """Settings the chosen products need, in catalogue order; the tenant also serves analytics."""
    needed = {s for p in products for s in PRODUCTS[p].needs}
    if needed & {"analytics_region"}:
        needed.add("tenant_id")
    return [key for key in SETTINGS if key in needed]


def _editing(rt: Runtime) -> ConnectionView | None:
    """The connection the address names, looked up again at every run; None to add one. A name
    that no longer exists (renamed or deleted since the address was made) leaves the address,
    saying so without repeating it (anyone can put any text in a link)."""
    name = st.query_params.get(EDIT_PARAM)
    if name is None:
        return None
    if len(name) <= NAME_MAX:
        with contextlib.suppress(NotFoundError):
            return connections.find_by_name(rt.engine, name)
    del st.query_params[EDIT_PARAM]
    st.warning(
        "The connection this address names no longer exists (renamed or deleted meanwhile): the form "
        "below adds a new one. The Connections page lists them all.",
        icon=":material/link_off:",
    )
    return None


def _load_widgets(view: ConnectionView | None) -> None:
    """Fill the widgets once per connection opened (never the Client ID or the secret)."""
    marker = str(view.id) if view else "new"
    if st.session_state.get(_LOADED) == marker:
        return
    st.session_state[_LOADED] = marker
    st.session_state[_key("name")] = view.name if view else ""
    st.session_state[_key("environment")] = view.environment if view else ""
    st.session_state[_key("client_id")] = ""
    st.session_state[_SECRET] = ""
    st.session_state[_key("products")] = list(view.expected_products) if view else []
    for key in SETTINGS:
        st.session_state[_key(key)] = (view.settings.get(key) if view else None) or (
            None if SETTINGS[key].choices else ""
        )


def _form_input(view: ConnectionView | None, secret: SecretStr) -> ConnectionInput:
    state = st.session_state
    products = list(state.get(_key("products"), []))
    shown = set(_needed_settings(products))
    settings: dict[str, Any] = {}
    for key in SETTINGS:
        if key in shown:
            settings[key] = state.get(_key(key)) or None
        else:  # hidden settings keep what is stored
            settings[key] = view.settings.get(key) if view else None
    return ConnectionInput(
        name=state.get(_key("name"), ""),
        environment=state.get(_key("environment"), ""),
        client_id=state.get(_key("client_id"), ""),
        client_secret=secret,
        expected_products=tuple(products),
        **settings,
    )


def _not_kept(editing: bool) -> str:
    """What to do now that a refused submit dropped the pasted secret."""
    if editing:
        return (
            "The new Client Secret was not kept: paste it again before you press Verify & save, "
            "or leave the field blank to keep the stored one. (A pasted secret is never kept "
            "after a refusal.)"
        )
    return (
        "The Client Secret was not kept: paste it again before you press Verify & save. "
        "(A pasted secret is never kept after a refusal.)"
    )


def _submit(connection_id: uuid.UUID | None, version: int | None) -> None:
    """Submit callback: runs before the rerun, so the secret can leave session state at once.
    ``version`` is the one the form was opened on: a newer stored one is a conflict.

    A refusal drops the pasted secret with the rest of this callback (it is kept nowhere), so
    the flash then carries a note saying so, shown under the empty field."""
    secret = take_secret(_SECRET)
    rt, me = acting(Permission.MANAGE_CONNECTIONS)
    state = st.session_state
    note = _not_kept(connection_id is not None) if secret.get_secret_value() else None
    skip = bool(state.pop(_key("skip_verify"), False))
    refusal: dict[str, Any]
    try:
        view = None if connection_id is None else connections.get(rt.engine, connection_id)
        data = _form_input(view, secret)
        saved, answer = linking.save(
            rt, None if skip else prober(), data, actor=me, connection_id=connection_id, expected_version=version
        )
    except ValidationError as exc:
        refusal = {"kind": "invalid", "errors": {e.field: (e.label, e.message) for e in exc.errors}}
    except linking.TokenRefused as exc:
        refusal = {"kind": "refused", "message": str(exc), "anchor": OUTCOMES[exc.result.outcome].guide_anchor}
        state[_OFFER_SKIP] = exc.unreachable
    except (ConflictError, NotFoundError, ProberClosed) as exc:
        refusal = {"kind": "refused", "message": str(exc), "anchor": None}
    else:
        state[_OFFER_SKIP] = False
        state[_SAVED] = str(saved.id)
        st.query_params[EDIT_PARAM] = saved.name  # the form now edits what was saved, under its new name
        state[_key("client_id")] = ""
        state[_FLASH] = {
            "kind": "saved",
            "name": saved.name,
            "verified": answer is not None,
            "expected": list(data.expected_products),
            "granted": None if answer is None else sorted(answer.granted),
            "warnings": [] if answer is None else answer.warnings(),
        }
        return
    state[_FLASH] = {**refusal, "secret_note": note}


def _refusal(field: str) -> None:
    """Why the last submit refused this field, right under it (the summary below the form
    lists every refusal too, including any for a setting the form does not show)."""
    flash = st.session_state.get(_FLASH)
    if flash and flash["kind"] == "invalid" and field in flash["errors"]:
        st.error(literal(flash["errors"][field][1]), icon=":material/error:")


def _secret_note() -> str | None:
    """The note about a secret the last submit dropped, while its field is still empty."""
    flash = st.session_state.get(_FLASH)
    if not flash or st.session_state.get(_SECRET):
        return None
    note: str | None = flash.get("secret_note")
    return note


def _comparison(expected: list[str], granted: list[str] | None) -> str:
    lines = ["| Product | You enabled | 8x8 granted | |", "|---|---|---|---|"]
    for key in PRODUCT_KEYS:
        mine, theirs = key in expected, granted is not None and key in granted
        if not mine and not theirs:
            continue
        note = "✅ matches" if mine == theirs else "⚠️ **differs**"
        lines.append(f"| {PRODUCTS[key].name} | {'yes' if mine else 'no'} | {'yes' if theirs else 'no'} | {note} |")
    return "\n".join(lines)


def _show_flash() -> None:
    flash = st.session_state.get(_FLASH)
    if not flash:
        return
    note = _secret_note()
    paste_again = f"\n\n{note}" if note else ""
    if flash["kind"] == "invalid":
        st.error(
            "Nothing was saved. Please fix:\n"
            + "\n".join(f"- **{label}**: {literal(message)}" for label, message in flash["errors"].values())
            + paste_again,
            icon=":material/edit_note:",
        )
    elif flash["kind"] == "refused":
        link = f" [Guide]({anchor_url(flash['anchor'])})" if flash["anchor"] else ""
        st.error(literal(flash["message"]) + link + paste_again, icon=":material/block:")
    elif flash["verified"]:
        st.success(
            f"8x8 issued a token for these credentials. Saved **{literal(flash['name'])}**.", icon=":material/verified:"
        )
        st.markdown(_comparison(flash["expected"], flash["granted"]))
        for warning in flash["warnings"]:
            st.warning(warning, icon=":material/warning:")
    else:
        st.warning(f"Saved **{literal(flash['name'])}** without verifying; it is untested.", icon=":material/warning:")


def _test_now(rt: Runtime, me: Principal) -> None:
    saved_id = st.session_state.get(_SAVED)
    if not saved_id:
        return
    if st.button("Test all products now", key="connect_test_now", icon=":material/play_arrow:"):
        report = checks.run_checks(rt, prober(), connection_ids=[uuid.UUID(saved_id)], triggered_by=me)
        for record in report.products:
            st.markdown(f"**{PRODUCTS[record.product].name}** — {badge(record.outcome)}")
            explain(record.outcome, record.detail)
        st.page_link("pages/connections.py", label="See it on the Connections page", icon=":material/lan:")


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    view = _editing(rt)
    _load_widgets(view)
    st.title(f"Edit {literal(view.name)}" if view else "Add a connection")
    st.caption(
        f"Switchboard asks 8x8 for a token with the values below before it saves anything. "
        f"New to this? Follow the [setup guide]({anchor_url('create-app')})."
    )
    if view and st.button("Add a new connection instead", key="connect_new"):
        del st.query_params[EDIT_PARAM]
        st.session_state.pop(_FLASH, None)
        st.session_state.pop(_SAVED, None)
        st.rerun()

    products = st.multiselect(
        FIELD_LABELS["expected_products"],
        PRODUCT_KEYS,
        key=_key("products"),
        format_func=lambda k: PRODUCTS[k].name,
        help=f"Tick what you ticked on the API app in the 8x8 Admin Console ([guide]({anchor_url('choose-products')})). "
        "Only the settings these products need are asked for below.",
    )
    _refusal("expected_products")
    with st.form("connect_form", border=True):
        st.text_input(
            FIELD_LABELS["name"],
            key=_key("name"),
            max_chars=80,
            help="A name your team recognises, e.g. 'Reporting - production'. Unique, ignoring case.",
        )
        _refusal("name")
        st.text_input(
            FIELD_LABELS["environment"],
            key=_key("environment"),
            max_chars=40,
            help="Optional label such as production, staging or lab.",
        )
        _refusal("environment")
        st.text_input(
            FIELD_LABELS["client_id"],
            key=_key("client_id"),
            placeholder=f"Leave blank to keep {view.client_id_hint}" if view else "",
            help=f"From Home > API Management in the 8x8 Admin Console ([guide]({anchor_url('copy-credentials')})).",
        )
        _refusal("client_id")
        st.text_input(
            FIELD_LABELS["client_secret"],
            key=_SECRET,
            type="password",
            placeholder="Leave blank to keep (and verify) the stored secret" if view else "",
            help="Shown by 8x8 when the app is created. Stored encrypted and never shown again "
            f"([guide]({anchor_url('copy-credentials')})).",
        )
        _refusal("client_secret")
        if note := _secret_note():
            st.warning(note, icon=":material/content_paste:")
        for key in _needed_settings(products):
            setting = SETTINGS[key]
            help_text = f"{setting.help} ([where to find it]({anchor_url(setting.guide_anchor)}))"
            if setting.choices:
                st.selectbox(
                    setting.label, setting.choices, key=_key(key), index=None, placeholder="Choose…", help=help_text
                )
            else:
                st.text_input(setting.label, key=_key(key), max_chars=64, help=help_text)
            _refusal(key)
        if st.session_state.get(_OFFER_SKIP):
            st.checkbox(
                "8x8 could not be reached: save without verifying (the connection is saved as untested)",
                key=_key("skip_verify"),
            )
        st.form_submit_button(
            "Verify & save",
            key="connect_submit",
            type="primary",
            icon=":material/verified_user:",
            on_click=_submit,
            args=(view.id, view.version) if view else (None, None),
        )
    _show_flash()
    _test_now(rt, me)
