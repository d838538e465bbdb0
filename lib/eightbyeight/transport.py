"""The prober's transport: what carries the 8x8 client's httpx requests, and the rules every
carrier keeps.

The client builds httpx requests and reads httpx responses (lib.eightbyeight.client); a
transport (httpx's public ``AsyncBaseTransport`` interface) carries them. Two are built in,
chosen with SWITCHBOARD_8X8_TRANSPORT (lib.kernel.config):

- ``aiohttp`` (the default, lib.eightbyeight.transport_aiohttp): aiohttp's client, whose C HTTP
  parser and simple pool cost ~0.7 ms of CPU per request in a bulk check;
- ``httpx`` (lib.eightbyeight.transport_httpx): httpx's own transport (httpcore's pools, h11's
  parser), ~1.0 ms per request: the fallback, should an aiohttp release misbehave. Choosing it
  never imports aiohttp.

Either reads each answer whole before it is returned, but only up to a cap (8x8's answers to
our probes are a few KiB; lib.catalogue.policy.MAX_ANSWER_BYTES, and limits on the status line
and headers): reading stops there and the answer is refused with RefusedAnswer
(lib.eightbyeight.refusals), which the
client reports as an unexpected answer. So is an answer in a Content-Encoding other than
identity: we ask for none, and decoding one (a 777 KB gzip answer can unpack to gigabytes) is
never tried. Nothing is followed, stored or read from the environment: no redirects, no
cookies, no proxy variables. TLS verification is always on, with httpx's CA bundle (and
SSL_CERT_FILE, as httpx honours it). Failures are raised as the httpx errors the client handles.
"""

from __future__ import annotations

import httpx


def open_transport(kind: str, max_connections: int) -> httpx.AsyncBaseTransport:
    """A new transport of ``kind`` (one of lib.kernel.config.EIGHTBYEIGHT_TRANSPORTS) for at most
    ``max_connections`` open connections. Each is imported only when chosen."""
    if kind == "aiohttp":
        from lib.eightbyeight.transport_aiohttp import AiohttpTransport

        return AiohttpTransport(max_connections)
    if kind == "httpx":
        from lib.eightbyeight.transport_httpx import HttpxTransport

        return HttpxTransport(max_connections)
    raise ValueError(f"no 8x8 transport is called {kind!r}")
