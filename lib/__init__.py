"""Switchboard core: vault, storage, prober and services shared by the console and the CLI.

Nothing in this package imports streamlit, except ``lib.ui``.
"""
