"""Connect: add a connection or edit one; 8x8 verifies the credentials before anything is saved."""

from lib.services.guard.access import Permission
from lib.ui.connect_form import render
from lib.ui.context import guard
from lib.ui.errors import error_boundary

# Also here, not only in app.py: a deep link can run this file without app.py.
console = guard(Permission.MANAGE_CONNECTIONS)
with error_boundary():
    render(console)
