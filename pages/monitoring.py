"""Monitoring: alert channels, quiet windows, the outbox and the delivery log (admins change them)."""

from lib.services.guard.access import Permission
from lib.ui.context import guard
from lib.ui.errors import error_boundary
from lib.ui.monitoring_view import render

# Also here, not only in app.py: a deep link can run this file without app.py.
console = guard(Permission.READ_STATUS)
with error_boundary():
    render(console)
