"""Connect: add a connection or edit one; 8x8 verifies the credentials before anything is saved."""

from lib.ui.connect_form import render
from lib.ui.runtime import guard

rt = guard()
render(rt)
