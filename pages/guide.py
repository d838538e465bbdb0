"""Setup guide: public, shows no stored data, so it needs no guard."""

from lib.ui.guide import render

render()
