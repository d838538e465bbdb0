"""``python -m lib``: the command line face of Switchboard (see lib.cli)."""

from lib.cli import main

main()
