"""Audit: the append-only trail of every sign-in, change, test and export (admins only)."""

from lib.access import Permission
from lib.ui.audit_view import render
from lib.ui.errors import error_boundary
from lib.ui.runtime import guard

# Also here, not only in app.py: a deep link can run this file without app.py.
console = guard(Permission.READ_AUDIT)
with error_boundary():
    render(console)
