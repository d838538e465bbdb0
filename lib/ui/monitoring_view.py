"""The Monitoring page: the alert rules, the channels they go to (with quiet windows), the outbox
and the delivery log. Every role reads; admins add, edit, turn on and off, test and remove channels.

A channel's URL and secret go in through password fields, are taken out of session state by
the callback before anything else, and are never shown back: the page shows scheme and host.
A secret Switchboard makes (a webhook added without a signing secret, or an edit that asks for
a new one) is shown once, in a dialog opened by that callback, and kept in no session state.
The inputs for each kind, and their words, are drawn from its fields (lib.notify.kinds); the
service checks them.
"""

from __future__ import annotations

from datetime import time

import pandas as pd
import streamlit as st
from pydantic import SecretStr

from lib.catalogue.products import PRODUCTS
from lib.kernel.errors import SwitchboardError
from lib.kernel.words import shown, span
from lib.notify import kinds
from lib.notify.spec import SLOTS, Field
from lib.services import alerts
from lib.services.alerts import channels, rules
from lib.services.alerts.outbox import HELD, PENDING
from lib.services.alerts.windows import DAYS, parse
from lib.services.guard.access import Permission
from lib.store.models import AlertDelivery
from lib.ui import incidents_view, maintenance_view
from lib.ui.context import Console, acting, take_secret
from lib.ui.text import literal

_SAID = "monitoring.said"  # what the last action did (or why not), shown once
_KIND = "channel_kind"
# The edit form's widgets, each key ending with edit_key(view).
_EVENTS, _ENVS = "channel_edit_events", "channel_edit_envs"
_REMOVING = "monitoring.removing"  # the channel whose Remove was clicked, until confirmed or cancelled


def _say(ok: bool, text: str) -> None:
    st.session_state[_SAID] = (ok, text)


def field_key(name: str, edit: str | None = None) -> str:
    """The input for a kind's field (lib.notify.spec.SLOTS): ``channel_<name>`` in the add form,
    ``channel_new_<name>_<edit key>`` in the edit form."""
    return f"channel_{name}" if edit is None else f"channel_new_{name}_{edit}"


def make_key(name: str, edit: str) -> str:
    """The edit form's checkbox asking Switchboard to make a new value for the field."""
    return f"channel_make_{name}_{edit}"


@st.dialog("New secret", on_dismiss="rerun")
def _show_once(name: str, field: Field, secret: SecretStr) -> None:
    """A secret Switchboard made, shown in this dialog only: it lives in no session state, and
    closing the dialog reruns the page, which lets go of it."""
    acting(Permission.MANAGE_ALERTS)  # a dialog's rerun decides afresh who may see it
    st.warning(f"The {field.in_sentence} of {literal(name)}, shown only now. {field.made_help}", icon=":material/key:")
    st.code(secret.get_secret_value(), language=None)
    if st.button("Done", key="secret_shown", type="primary"):
        st.rerun()


def _shown_once(view: channels.ChannelView, made: SecretStr | None) -> None:
    field = kinds.get(view.kind).field("secret")
    if field is not None and made is not None:
        _show_once(view.name, field, made)


def _add_channel(inputs: dict[str, str]) -> None:
    """``inputs``: the form's input of each field (given by the button, as a callback calls
    nothing but take_secret before ``acting``)."""
    given = {field: take_secret(inputs[field]) for field in SLOTS}
    rt, me = acting(Permission.MANAGE_ALERTS)
    state = st.session_state
    try:
        view, made = channels.add(
            rt.engine,
            rt.vault,
            state["channel_name"],
            state[_KIND],
            given["url"],
            actor=me,
            allow=channels.allowed(rt.settings),
            secret=given["secret"],
            events=state["channel_events"],
            environments=[e for e in state["channel_envs"].split(",") if e.strip()],
        )
    except SwitchboardError as exc:
        _say(False, str(exc))
        return
    _say(True, f"Added {view.name}, sending to {view.url_hint}.")
    _shown_once(view, made)


def _edit_channel(name: str, key: str, drawn: tuple[list[str], list[str]], inputs: dict[str, str]) -> None:
    """Save what the form changed from what it was ``drawn`` with (events, environments), so a
    new URL alone does not write back lists someone else changed meanwhile. ``inputs`` as for
    :func:`_add_channel`."""
    given = {field: take_secret(inputs[field]) for field in SLOTS}
    rt, me = acting(Permission.MANAGE_ALERTS)
    state = st.session_state
    events = list(state[f"{_EVENTS}_{key}"])
    environments = channels.environments_of(state[f"{_ENVS}_{key}"].split(","))
    try:
        view, made = channels.change(
            rt.engine,
            rt.vault,
            name,
            actor=me,
            allow=channels.allowed(rt.settings),
            url=given["url"],
            secret=given["secret"],
            make_secret=bool(state.get(make_key("secret", key))),
            events=None if events == drawn[0] else events,
            environments=None if environments == drawn[1] else environments,
        )
    except SwitchboardError as exc:
        _say(False, str(exc))
        return
    _say(
        True,
        f"Saved {view.name}, sending to {view.url_hint}."
        + ("" if view.enabled else " It is still off: turn it on to send again."),
    )
    _shown_once(view, made)


def _act(what: str, name: str) -> None:
    rt, me = acting(Permission.MANAGE_ALERTS)
    try:
        if what == "test":
            attempt = alerts.send_test(rt, name, actor=me)
            _say(
                attempt.delivered,
                f"Test sent to {name}."
                if attempt.delivered
                else f"The test did not reach {name}: {attempt.error or f'HTTP {attempt.status}'}",
            )
            return
        if what == "remove":
            st.session_state.pop(_REMOVING, None)
            channels.remove(rt.engine, name, actor=me)
        else:
            channels.set_enabled(rt.engine, name, what == "on", actor=me)
    except SwitchboardError as exc:
        _say(False, str(exc))
        return
    _say(True, {"remove": f"Removed {name}.", "on": f"Turned {name} on.", "off": f"Turned {name} off."}[what])


def _ask_removal(name: str | None) -> None:
    acting(Permission.MANAGE_ALERTS)
    st.session_state[_REMOVING] = name


def _add_window(name: str) -> None:
    rt, me = acting(Permission.MANAGE_ALERTS)
    state = st.session_state
    try:
        window = parse(
            ",".join(state["window_days"]) or "",
            f"{state['window_start']:%H:%M}",
            f"{state['window_end']:%H:%M}",
            state["window_zone"],
        )
        channels.add_window(rt.engine, name, window, actor=me)
    except SwitchboardError as exc:
        _say(False, str(exc))
        return
    _say(True, f"{name} is quiet {window.describe()}.")


def _remove_window(name: str, window_id: int) -> None:
    rt, me = acting(Permission.MANAGE_ALERTS)
    try:
        channels.remove_window(rt.engine, name, window_id, actor=me)
    except SwitchboardError as exc:
        _say(False, str(exc))


def _channels_table(views: list[channels.ChannelView]) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Name": v.name,
                    "Kind": v.kind,
                    "Sends to": v.url_hint,
                    "Events": ", ".join(v.events) or "none",
                    "Environments": ", ".join(v.environments) or "all",
                    "State": "on" if v.enabled else f"off: {v.disabled_reason or 'turned off'}",
                    "Quiet windows": "; ".join(w.describe() for _, w in v.windows) or "none",
                }
                for v in views
            ]
        ),
        hide_index=True,
        width="stretch",
        key="channels_table",
    )


def _add_form() -> None:
    with st.expander("Add a channel", icon=":material/add_alert:"):
        st.text_input("Channel name", key="channel_name", placeholder="Ops Slack")
        kind = kinds.get(
            st.selectbox("Kind", list(kinds.KINDS), key=_KIND, format_func=lambda key: kinds.KINDS[key].label)
        )
        for field in kind.fields:
            blank = "" if field.required else " (blank: make one)" if field.made else " (blank: none)"
            st.text_input(
                f"{field.label}{blank}",
                key=field_key(field.name),
                type="password",
                placeholder=field.example,
                help=f"{field.help} Never shown back.",
            )
        st.multiselect(
            "Events",
            [k.value for k in channels.ROUTABLE],
            default=[k.value for k in channels.ROUTABLE],
            key="channel_events",
        )
        st.text_input("Environments (comma-separated; blank: all)", key="channel_envs")
        st.button(
            "Add channel",
            key="channel_add",
            on_click=_add_channel,
            args=({name: field_key(name) for name in SLOTS},),
            icon=":material/add:",
        )


def edit_key(view: channels.ChannelView) -> str:
    """The edit form's widget keys end with this: the channel and when it last changed, so the
    fields start again from its saved values whenever it changes (here or anywhere else)."""
    return f"{view.id.hex}_{view.updated_at:%Y%m%d%H%M%S%f}" if view.updated_at else view.id.hex


def _edit_form(view: channels.ChannelView) -> None:
    key, kind = edit_key(view), kinds.KINDS.get(view.kind)
    if kind is None:  # its module was taken out of lib.notify.kinds: nothing can be sent to it
        st.caption(
            f"Switchboard no longer has the kind {literal(view.kind)}: remove this channel, or add it again "
            "as a kind it has."
        )
        return
    with st.expander(f"Edit {view.name}", icon=":material/edit:"):
        for field in kind.fields:
            now = (
                f"Now sends to {view.url_hint}. A receiver that moved, or answered 410, needs its new address here."
                if field.name == "url"
                else field.help
            )
            st.text_input(
                f"New {field.in_sentence} (blank: keep)",
                key=field_key(field.name, key),
                type="password",
                help=f"{now} Never shown back.",
            )
            if field.made:
                st.checkbox(f"Make a new {field.in_sentence} (shown once)", key=make_key(field.name, key))
        st.multiselect(
            "Events", [k.value for k in channels.ROUTABLE], default=list(view.events), key=f"{_EVENTS}_{key}"
        )
        st.text_input("Environments (comma-separated; blank: all)", ", ".join(view.environments), key=f"{_ENVS}_{key}")
        st.button(
            "Save changes",
            key="channel_edit",
            on_click=_edit_channel,
            args=(
                view.name,
                key,
                (list(view.events), list(view.environments)),
                {name: field_key(name, key) for name in SLOTS},
            ),
            icon=":material/save:",
        )


def _manage(views: list[channels.ChannelView]) -> None:
    name = st.selectbox("Channel", [v.name for v in views], key="channel_chosen")
    view = next((v for v in views if v.name == name), None)
    if view is None:
        return
    with st.container(horizontal=True):  # side by side, wrapping on a phone
        st.button("Send test", key="channel_test", on_click=_act, args=("test", view.name), icon=":material/send:")
        st.button(
            "Turn off" if view.enabled else "Turn on",
            key="channel_toggle",
            on_click=_act,
            args=("off" if view.enabled else "on", view.name),
            icon=":material/power_settings_new:",
        )
        st.button("Remove", key="channel_remove", on_click=_ask_removal, args=(view.name,), icon=":material/delete:")
    if st.session_state.get(_REMOVING) == view.name:
        with st.container(border=True):
            st.warning(
                f"Remove {literal(view.name)}? Its alerts stop, and what its outbox still holds is "
                "dropped. Its delivery log stays.",
                icon=":material/warning:",
            )
            yes, no = st.columns(2)
            yes.button(
                f"Remove {view.name}",
                key="channel_remove_confirm",
                type="primary",
                on_click=_act,
                args=("remove", view.name),
                icon=":material/delete:",
            )
            no.button("Keep it", key="channel_remove_cancel", on_click=_ask_removal, args=(None,))
    _edit_form(view)
    st.markdown("**Quiet windows** (events are held, then sent as one summary when the window ends)")
    for window_id, window in view.windows:
        left, right = st.columns([4, 1])
        left.write(literal(window.describe()))
        right.button("Remove", key=f"window_remove_{window_id}", on_click=_remove_window, args=(view.name, window_id))
    days, start, end, zone = st.columns(4)
    days.multiselect("Days", list(DAYS), key="window_days")
    start.time_input("From", time(22, 0), key="window_start")
    end.time_input("To", time(6, 0), key="window_end")
    zone.text_input("Time zone", "UTC", key="window_zone")
    st.button("Add quiet window", key="window_add", on_click=_add_window, args=(view.name,))


def _next_attempt(q: alerts.Queued) -> str:
    """When a queued event is tried next, in words for the rows that wait for no time."""
    if q.status == HELD:
        return "When the quiet window ends"
    return shown(q.due_at) if q.status == PENDING else "No more attempts"


def outbox_table(queued: list[alerts.Queued]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Channel": q.channel,
                "Event": q.event.kind.value,
                "Summary": q.event.summary,
                "Status": q.status,
                "Attempts": q.attempts,
                "Next attempt": _next_attempt(q),
                "Last error": q.last_error or "—",
            }
            for q in queued
        ]
    )


def log_table(rows: list[AlertDelivery]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "At": shown(r.at),
                "Channel": r.channel,
                "Event": r.kind,
                "Connection": r.connection or "—",
                "Product": PRODUCTS[r.product].name
                if r.product is not None and r.product in PRODUCTS
                else (r.product or "—"),
                "Attempt": r.attempt,
                "Outcome": r.outcome,
                "HTTP": str(r.http_status) if r.http_status else "—",
                "Error": r.error or "—",
                "ms": r.duration_ms,
                "By": r.worker or "—",
            }
            for r in rows
        ]
    )


def _outbox(queued: list[alerts.Queued]) -> None:
    st.subheader("Outbox")
    if not queued:
        st.caption("Nothing waiting, held or failed.")
        return
    st.dataframe(outbox_table(queued), hide_index=True, width="stretch", key="outbox_table")


def _log(rows: list[AlertDelivery]) -> None:
    st.subheader("Delivery log")
    if not rows:
        st.caption("No delivery attempted yet.")
        return
    st.dataframe(log_table(rows), hide_index=True, width="stretch", key="delivery_table")


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.title("Monitoring")
    st.caption(
        f"Alerts: check.failed after {rules.FAIL_AFTER} failing checks in a row of a ticked product; "
        f"check.recovered only after that; check.still_failing every {span(rules.REMIND_EVERY)} while down; "
        f"products.drifted when 8x8's token grants other products; secret.aging from "
        f"{rules.SECRET_WARN_AGE.days} days. Manual, command-line and scheduled checks all count."
    )
    if said := st.session_state.pop(_SAID, None):
        ok, text = said
        (st.success if ok else st.error)(literal(text), icon=":material/check:" if ok else ":material/error:")
    views = channels.list_channels(rt.engine, actor=me)
    incidents_view.render(console)
    st.subheader("Channels")
    if views:
        _channels_table(views)
    else:
        st.info("No alert channels yet.", icon=":material/info:")
    if me.can(Permission.MANAGE_ALERTS):
        _add_form()
        if views:
            _manage(views)
    _outbox(alerts.outbox(rt.engine, actor=me))
    _log(alerts.delivery_log(rt.engine, actor=me))
    maintenance_view.render(console)
