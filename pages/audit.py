"""Audit: the append-only trail of every sign-in, change, test and export (admins only)."""

from lib.services.guard.access import Permission
from lib.ui.audit_view import render
from lib.ui.context import guard
from lib.ui.errors import error_boundary

# Also here, not only in app.py: a deep link can run this file without app.py.
console = guard(Permission.READ_AUDIT)
with error_boundary():
    render(console)
