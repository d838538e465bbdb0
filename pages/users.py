"""Users: who may use Switchboard, and with which role (admins only)."""

from lib.services.guard.access import Permission
from lib.ui.context import guard
from lib.ui.errors import error_boundary
from lib.ui.users_view import render

# Also here, not only in app.py: a deep link can run this file without app.py.
console = guard(Permission.MANAGE_USERS)
with error_boundary():
    render(console)
