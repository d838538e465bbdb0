"""How long a connection's fields may be: the connection form, the CLI, alert channels' filters
and the status API's query parameters all refuse past these, so they cannot disagree."""

from __future__ import annotations

NAME_MAX = 80
ENVIRONMENT_MAX = 40
CLIENT_ID_MAX = 256
SECRET_MAX = 1024  # a Client Secret, as pasted
