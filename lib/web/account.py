"""The server's own account routes (local accounts): sign-in, first-admin setup, and people
changing their own password (which they must, first, when an admin chose it).

They run in the ASGI app Streamlit serves (``st.App`` routes), so they can set the session
cookie (``lib.web.cookie``). Every POST must come from our own origin, and its form is read
within limits (``lib.web.forms``).
"""

from __future__ import annotations

import re

from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from lib.kernel.errors import ValidationError
from lib.services.accounts import first_run, sessions, users
from lib.services.guard.access import Principal
from lib.web import cookie, html
from lib.web.forms import read_form
from lib.web.gate import PASSWORD_PATH, QUERY_SAFE, password_path, session_key
from lib.web.origins import origin_allowed
from lib.web.state import ServerState

NEXT_MAX = 2000  # characters of a next= address; alert links need far fewer
_NEXT = re.compile(rf"/(?:[a-z0-9-]*|account/password)(?:\?[A-Za-z0-9{re.escape(QUERY_SAFE)}]*)?")


def safe_next(value: object) -> str:
    """Where to go after signing in: one of our own page paths with the query it was opened
    with (as the gate passes it on), so a link lands where it points. Never another site: no
    scheme or host, nothing but a path of ours at the start (so never ``//…`` or ``/\\…``), no
    fragment, space or control character, at most ``NEXT_MAX`` characters. Anything else: "/"."""
    if isinstance(value, str) and len(value) <= NEXT_MAX and _NEXT.fullmatch(value):
        return value
    return "/"


def same_origin(request: Request, state: ServerState) -> bool:
    """A form POST from our own pages carries our origin (or, where a browser withholds it,
    Sec-Fetch-Site: same-origin); anything else is refused, against login CSRF."""
    if origin_allowed(request.scope, state.settings):
        return True
    return request.headers.get("sec-fetch-site") == "same-origin"


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _with_session(response: Response, request: Request, state: ServerState, token: str) -> Response:
    cookie.set_session(response, request.scope, state.settings, token, int(state.limits.lifetime.total_seconds()))
    return response


def _signed_in(request: Request, state: ServerState, principal: Principal, next_path: str) -> Response:
    token = sessions.new_token()
    sessions.start(state.engine, sessions.Key.of(token), principal)
    return _with_session(RedirectResponse(next_path, status_code=303), request, state, token)


def _forget_cookie(response: Response, request: Request, state: ServerState) -> Response:
    """Drop a cookie whose session has ended (it would only be sent in vain)."""
    if sessions.COOKIE_NAME in request.cookies:
        cookie.forget_session(response, request.scope, state.settings)
    return response


def _before_sign_in(page: str, request: Request, state: ServerState) -> Response:
    """A page a sign-in starts from: it offers the probe that tells whether this browser keeps
    a ``__Host-`` cookie here (``lib.web.cookie``)."""
    response = HTMLResponse(page)
    cookie.offer_probe(response, request.scope, state.settings)
    return response


def account_routes(state: ServerState) -> list[Route]:
    async def sign_in_page(request: Request) -> Response:
        if not state.local_accounts:
            return RedirectResponse("/", status_code=303)
        if await run_in_threadpool(first_run.needs_setup, state.engine):
            return RedirectResponse("/account/setup", status_code=303)
        next_path = safe_next(request.query_params.get("next"))
        if await run_in_threadpool(sessions.resume, state.engine, session_key(request, state), state.limits):
            return RedirectResponse(next_path, status_code=303)  # already signed in
        notice = "You are signed out." if request.query_params.get("signed_out") else ""
        return _forget_cookie(_before_sign_in(html.sign_in(next_path, notice, "info"), request, state), request, state)

    async def sign_in(request: Request) -> Response:
        if not state.local_accounts or not same_origin(request, state):
            return HTMLResponse("This form must be sent from Switchboard's own sign-in page.", status_code=403)
        form = await read_form(request)
        username, next_path = form.get("username", ""), safe_next(form.get("next"))
        password = SecretStr(form.get("password", ""))
        try:
            view = await run_in_threadpool(
                users.authenticate, state.engine, username, password, address=client_address(request)
            )
        except users.Throttled as exc:
            return HTMLResponse(
                html.sign_in(next_path, str(exc), username=username),
                status_code=429,
                headers={"Retry-After": str(int(exc.retry_after) + 1)},
            )
        except users.SignInFailed as exc:
            return HTMLResponse(html.sign_in(next_path, str(exc), username=username), status_code=401)
        principal = Principal(view.username, view.role, client_address(request) or None, "local")
        onward = password_path(next_path) if view.must_change_password else next_path
        return await run_in_threadpool(_signed_in, request, state, principal, onward)

    async def setup_page(request: Request) -> Response:
        if not state.local_accounts or not await run_in_threadpool(first_run.needs_setup, state.engine):
            return RedirectResponse("/account/sign-in", status_code=303)
        return _before_sign_in(html.setup(), request, state)

    async def setup(request: Request) -> Response:
        if not state.local_accounts or not same_origin(request, state):
            return HTMLResponse("This form must be sent from Switchboard's own setup page.", status_code=403)
        form = await read_form(request)
        username = form.get("username", "")
        password, again = form.get("password", ""), form.get("password_again", "")
        if password != again:
            return HTMLResponse(
                html.setup("The two passwords differ: type the same password in both fields.", username),
                status_code=400,
            )
        try:
            admin = await run_in_threadpool(
                first_run.redeem,
                state.engine,
                SecretStr(form.get("setup_code", "")),
                username,
                SecretStr(password),
                address=client_address(request),
            )
        except users.Throttled as exc:
            return HTMLResponse(html.setup(str(exc), username), status_code=429)
        except ValidationError as exc:
            return HTMLResponse(html.setup(str(exc), username), status_code=400)
        return await run_in_threadpool(_signed_in, request, state, admin, "/")

    async def _signed_in_now(request: Request) -> sessions.SignedIn | None:
        return await run_in_threadpool(sessions.resume, state.engine, session_key(request, state), state.limits)

    def _to_sign_in(request: Request) -> Response:
        return _forget_cookie(
            RedirectResponse(f"/account/sign-in?next={PASSWORD_PATH}", status_code=303), request, state
        )

    async def password_page(request: Request) -> Response:
        if not state.local_accounts:
            return RedirectResponse("/", status_code=303)  # company accounts change passwords at the provider
        next_path = safe_next(request.query_params.get("next"))
        live = await _signed_in_now(request)
        if live is None:
            return _to_sign_in(request)
        if request.query_params.get("changed") and not live.must_change_password:
            return HTMLResponse(html.password_changed(next_path))
        return HTMLResponse(html.change_password(next_path, required=live.must_change_password))

    async def change_password(request: Request) -> Response:
        if not state.local_accounts or not same_origin(request, state):
            return HTMLResponse("This form must be sent from Switchboard's own change-password page.", status_code=403)
        form = await read_form(request)
        next_path = safe_next(form.get("next"))
        key = session_key(request, state)
        live = await _signed_in_now(request)
        if live is None or key is None:
            return _to_sign_in(request)

        def again(notice: str, status: int, **headers: str) -> Response:
            page = html.change_password(next_path, required=live.must_change_password, notice=notice)
            return HTMLResponse(page, status_code=status, headers=headers)

        new = form.get("new_password", "")
        if new != form.get("new_password_again", ""):
            return again("The two new passwords differ: type the same password in both fields.", 400)
        try:
            token = await run_in_threadpool(
                users.change_password,
                state.engine,
                live.subject,
                SecretStr(form.get("current_password", "")),
                SecretStr(new),
                address=client_address(request),
                keep=key,
            )
        except users.Throttled as exc:
            return again(str(exc), 429, **{"Retry-After": str(int(exc.retry_after) + 1)})
        except ValidationError as exc:
            return again(str(exc), 400)
        if token is None:  # this browser's session ended meanwhile: the new password signs it in again
            return _to_sign_in(request)
        # Every session of the account ended with the change; this browser goes on under a new one.
        return _with_session(
            RedirectResponse(f"{password_path(next_path)}&changed=1", status_code=303), request, state, token
        )

    async def sign_out(request: Request) -> Response:
        """The way out of the change-password page (the console's Sign out page waits behind it)."""
        if not state.local_accounts or not same_origin(request, state):
            return HTMLResponse("This form must be sent from one of Switchboard's own pages.", status_code=403)
        key, live = session_key(request, state), await _signed_in_now(request)
        if key is not None and live is not None:
            me = Principal(live.subject, live.role, client_address(request) or None, live.via)
            await run_in_threadpool(sessions.end, state.engine, key, me)
        return _forget_cookie(RedirectResponse("/account/sign-in?signed_out=1", status_code=303), request, state)

    return [
        Route("/account/sign-in", sign_in_page, methods=["GET"]),
        Route(html.SIGN_OUT_PATH, sign_out, methods=["POST"]),
        Route("/account/sign-in", sign_in, methods=["POST"]),
        Route("/account/setup", setup_page, methods=["GET"]),
        Route("/account/setup", setup, methods=["POST"]),
        Route(PASSWORD_PATH, password_page, methods=["GET"]),
        Route(PASSWORD_PATH, change_password, methods=["POST"]),
    ]
