"""The sign-in, first-admin and change-password pages: plain HTML forms served by our own
routes, so a password never travels over Streamlit's WebSocket and the server can set an
HttpOnly cookie."""

from __future__ import annotations

from html import escape

from lib.services.accounts.users import PASSWORD_MIN

SIGN_OUT_PATH = "/account/sign-out"  # a form's way out, where the console's Sign out page cannot be reached

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f6f7f9;color:#1f2430;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;border:1px solid #dde1e7;border-radius:12px;padding:32px 36px;width:min(420px,92vw);
box-shadow:0 2px 10px rgba(0,0,0,.05)}
h1{font-size:1.4rem;margin:0 0 4px}p.lead{color:#5a6273;margin:0 0 20px}
label{display:block;font-weight:600;margin:14px 0 6px}
input{width:100%;box-sizing:border-box;padding:10px 12px;border:1px solid #c5cbd5;border-radius:8px;font-size:1rem}
small{color:#5a6273;display:block;margin-top:4px}
button{margin-top:22px;width:100%;padding:11px;border:0;border-radius:8px;background:#d6312b;color:#fff;
font-size:1rem;font-weight:600;cursor:pointer}
.notice{border-radius:8px;padding:10px 12px;margin-bottom:8px}
.error{background:#fdecea;color:#8a1f17}.info{background:#e8f1fb;color:#1d4f86}
footer{margin-top:18px;font-size:.9rem;color:#5a6273}a{color:#1d4f86}
"""


def _page(title: str, lead: str, body: str, notice: str = "", kind: str = "error") -> str:
    banner = (
        f'<div class="notice {kind}" role="alert" data-testid="account-notice">{escape(notice)}</div>' if notice else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Switchboard</title><style>{_STYLE}</style></head>
<body><main><h1>{escape(title)}</h1><p class="lead">{escape(lead)}</p>{banner}{body}
<footer>Need credentials from 8x8 first? Read the <a href="/guide">setup guide</a>.</footer></main></body></html>"""


def sign_in(next_path: str, notice: str = "", kind: str = "error", username: str = "") -> str:
    form = f"""<form method="post" action="/account/sign-in" data-testid="sign-in-form">
<input type="hidden" name="next" value="{escape(next_path)}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required value="{escape(username)}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" data-testid="sign-in-submit">Sign in</button></form>
<footer>Forgot your password? Ask a Switchboard admin to reset it.</footer>"""
    return _page("Sign in to Switchboard", "The console for your 8x8 API connections.", form, notice, kind)


def setup(notice: str = "", username: str = "") -> str:
    form = f"""<form method="post" action="/account/setup" data-testid="setup-form">
<label for="setup_code">Setup code</label>
<input id="setup_code" name="setup_code" autocomplete="off" required autofocus>
<small>Printed on the console of the Switchboard server when it started. Ask whoever runs it.</small>
<label for="username">Your user name</label>
<input id="username" name="username" autocomplete="username" required value="{escape(username)}">
<label for="password">Choose a password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="{PASSWORD_MIN}">
<small>At least {PASSWORD_MIN} characters; a few unrelated words work well. Common passwords are refused.</small>
<label for="password_again">The same password again</label>
<input id="password_again" name="password_again" type="password" autocomplete="new-password" required>
<button type="submit" data-testid="setup-submit">Create the first admin</button></form>"""
    return _page("Set up Switchboard", "No one can sign in yet. Create the first admin account.", form, notice)


def change_password(next_path: str, *, required: bool, notice: str = "") -> str:
    """The form a signed-in person changes their own password with (``required``: an admin set
    it, and nothing else opens until they do)."""
    form = f"""<form method="post" action="/account/password" data-testid="password-form">
<input type="hidden" name="next" value="{escape(next_path)}">
<label for="current_password">Current password</label>
<input id="current_password" name="current_password" type="password" autocomplete="current-password" required
 autofocus>
<label for="new_password">New password</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password" required
 minlength="{PASSWORD_MIN}">
<small>At least {PASSWORD_MIN} characters; a few unrelated words work well. Common passwords are refused.</small>
<label for="new_password_again">The new password again</label>
<input id="new_password_again" name="new_password_again" type="password" autocomplete="new-password" required>
<button type="submit" data-testid="password-submit">Change password</button></form>"""
    if required:
        lead = "An admin chose your password. Choose your own to go on; it ends your other sessions."
        form += (
            f'<form method="post" action="{SIGN_OUT_PATH}"><button type="submit" '
            'data-testid="password-sign-out">Sign out instead</button></form>'
        )
    else:
        lead = "Choose a new password. Your other sessions end; this one stays."
        form += f'<footer><a href="{escape(next_path)}" data-testid="password-back">Back to the console</a></footer>'
    return _page("Change your password", lead, form, notice)


def password_changed(next_path: str) -> str:
    body = f'<p><a href="{escape(next_path)}" data-testid="password-continue">Continue to Switchboard</a></p>'
    return _page(
        "Password changed",
        "Your new password is in use. Your other sessions were signed out.",
        body,
        "Your password is changed.",
        "info",
    )


def cannot_start(problem: str) -> str:
    body = "<p>Who must act: a Switchboard admin (see docs/operating/configuration.md).</p>"
    return _page("Switchboard cannot start", problem, body)
