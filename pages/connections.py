"""Connections: status of every connection and product, tests, and export."""

from lib.services.guard.access import Permission
from lib.ui.connections_view import render
from lib.ui.context import guard
from lib.ui.errors import error_boundary

# Also here, not only in app.py: a deep link can run this file without app.py.
console = guard(Permission.READ_STATUS)
with error_boundary():
    render(console)
