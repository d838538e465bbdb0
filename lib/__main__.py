"""``python -m lib``: the command line face of Switchboard (see lib.cli; installed as `switchboard`)."""

from lib.cli import main

main()
