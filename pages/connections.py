"""Connections: status of every connection and product, tests, and export."""

from lib.ui.connections_view import render
from lib.ui.runtime import guard

rt = guard()
render(rt)
