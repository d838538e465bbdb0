"""The 8x8 API products Switchboard tests, the settings they need, and how each is probed.

Everything here is data. Adding a product or a region is an edit of this file, not a new
code path: the 8x8 client (``lib.eightbyeight``), the simulator, the console and the guide
all read these tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

# --- Settings a connection can carry, and the values each accepts -------------------------

ANALYTICS_REGIONS: tuple[str, ...] = ("us", "eu", "au", "ca")
STORAGE_REGIONS: tuple[str, ...] = ("us-west", "us-east", "uk", "ap", "ca")
CHAT_REGIONS: tuple[str, ...] = ("us", "eu", "ca", "ap")

# The analytics APIs put the region in front of the path; the US has no prefix.
ANALYTICS_PATH_PREFIX: Mapping[str, str] = MappingProxyType({"us": "", "eu": "/eu", "au": "/au", "ca": "/ca"})


# Free-text settings land in probe URLs as one path segment (or in a header): letters,
# digits, '.', '-' and '_', and never '.' or '..' alone, which a URL would read as a step up.
_SEGMENT = re.compile(r"^(?!\.+$)[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Setting:
    """A per-connection value some products need (a region, the tenant, the PBX name)."""

    key: str
    label: str
    choices: tuple[str, ...] | None  # None: free text, one safe path segment
    guide_anchor: str
    help: str

    def accepts(self, value: str) -> bool:
        return value in self.choices if self.choices is not None else bool(_SEGMENT.match(value))


SETTINGS: Mapping[str, Setting] = MappingProxyType(
    {
        s.key: s
        for s in (
            Setting(
                "analytics_region",
                "Analytics region",
                ANALYTICS_REGIONS,
                "find-settings",
                "Region of your Contact Center tenant: us, eu, au or ca.",
            ),
            Setting(
                "storage_region",
                "Cloud Storage region",
                STORAGE_REGIONS,
                "find-settings",
                "Any valid storage region; the test also reports where your data lives.",
            ),
            Setting(
                "qm_region",
                "Quality Management region",
                STORAGE_REGIONS,
                "find-settings",
                "Region of your Quality Management data.",
            ),
            Setting(
                "chat_region",
                "Chat region",
                CHAT_REGIONS,
                "find-settings",
                "Region of your Contact Center chat: us, eu, ca or ap.",
            ),
            Setting(
                "tenant_id",
                "Contact Center tenant ID",
                None,
                "find-settings",
                "As shown in 8x8 Configuration Manager. Needed for chat; sent to analytics when set.",
            ),
            Setting(
                "pbx",
                "PBX name",
                None,
                "find-settings",
                "The PBX your Quality Management data comes from.",
            ),
        )
    }
)


# --- Products ------------------------------------------------------------------------------


class Shape(StrEnum):
    """What a successful probe body looks like; ``lib.eightbyeight`` holds one check per shape."""

    JSON_ARRAY = "json_array"  # a JSON array (possibly empty)
    STRING_ARRAY = "string_array"  # a JSON array of strings
    COUNT = "count"  # a bare number, or a string holding one
    PAGED_DATA = "paged_data"  # an object with a "data" array


@dataclass(frozen=True)
class Probe:
    """One read-only request that proves a product works for an app.

    ``path`` is a ``str.format`` template over the connection's settings plus
    ``analytics_prefix`` (derived from ``analytics_region``). ``setting_headers`` maps a
    header name to the setting that fills it; the header is sent only when the setting has
    a value (it is required only when listed in ``Product.needs``).
    """

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    setting_headers: Mapping[str, str] = field(default_factory=dict)
    success: Shape = Shape.JSON_ARRAY


@dataclass(frozen=True)
class Noun:
    """A thing a probe reads, in the singular and the plural: the detail of a good answer says
    how many it read ("12 queues read from CC Realtime Analytics.")."""

    one: str
    many: str


@dataclass(frozen=True)
class Product:
    key: str
    name: str
    api_product: str  # the name 8x8 lists in the token's api_product_list
    summary: str  # what it gives an app, in one line
    tests_what: str  # what Switchboard's probe reads
    reads: Noun  # what a good answer holds, counted in its detail
    needs: tuple[str, ...]  # settings that must be set before the probe can run
    probe: Probe
    guide_anchor: str


PRODUCTS: Mapping[str, Product] = MappingProxyType(
    {
        p.key: p
        for p in (
            Product(
                key="cc_realtime_analytics",
                name="CC Realtime Analytics",
                api_product="analytics realtime-api",
                summary="Live queue and agent statistics from your Contact Center.",
                tests_what="Lists one queue (names only, no metrics).",
                reads=Noun("queue", "queues"),
                needs=("analytics_region",),
                probe=Probe(
                    method="GET",
                    path="{analytics_prefix}/analytics/cc/v5/realtime-metrics/queues",
                    params={"summary": "true", "page": "0", "size": "1"},
                    headers={"Accept": "application/json"},
                    setting_headers={"X-Tenant-Info": "tenant_id"},
                    success=Shape.JSON_ARRAY,
                ),
                guide_anchor="product-cc-realtime-analytics",
            ),
            Product(
                key="cc_historical_analytics",
                name="CC Historical Analytics",
                # 8x8 documents one product name for realtime and historical analytics.
                api_product="analytics realtime-api",
                summary="Historical Contact Center reports (interactions, agents, queues).",
                tests_what="Lists the report types; no report is created.",
                reads=Noun("report type", "report types"),
                needs=("analytics_region",),
                probe=Probe(
                    method="GET",
                    path="{analytics_prefix}/analytics/cc/v8/historical-metrics/report-types",
                    headers={"Accept": "application/json;charset=UTF-8"},
                    setting_headers={"X-Tenant-Info": "tenant_id"},
                    success=Shape.JSON_ARRAY,
                ),
                guide_anchor="product-cc-historical-analytics",
            ),
            Product(
                key="cloud_storage",
                name="Cloud Storage Service",
                api_product="storage",
                summary="Call recordings, transcripts and other stored objects.",
                tests_what="Asks which storage regions hold your data.",
                reads=Noun("region holding data", "regions holding data"),
                needs=("storage_region",),
                probe=Probe(
                    method="GET",
                    path="/storage/{storage_region}/v3/regions",
                    headers={"Accept": "application/json"},
                    success=Shape.STRING_ARRAY,
                ),
                guide_anchor="product-cloud-storage",
            ),
            Product(
                key="quality_management",
                name="Quality Management",
                api_product="QM - API",
                summary="Quality Management and Speech Analytics data.",
                tests_what="Counts the users of your PBX in Quality Management.",
                reads=Noun("user", "users"),
                needs=("qm_region", "pbx"),
                probe=Probe(
                    method="GET",
                    path="/qm/{qm_region}/v1/users/count",
                    headers={"Accept": "application/json", "Content-Type": "application/json"},
                    setting_headers={"pbx": "pbx"},
                    success=Shape.COUNT,
                ),
                guide_anchor="product-quality-management",
            ),
            Product(
                key="cc_chat",
                name="Contact Center Chat",
                api_product="vcc",
                summary="Contact Center chat channels, webhooks and conversations.",
                tests_what="Lists one chat webhook of your tenant.",
                reads=Noun("chat webhook", "chat webhooks"),
                needs=("chat_region", "tenant_id"),
                probe=Probe(
                    method="GET",
                    path="/vcc/{chat_region}/chat/v2/tenant/{tenant_id}/web-hooks",
                    params={"page": "0", "size": "1"},
                    headers={"Accept": "application/json"},
                    success=Shape.PAGED_DATA,
                ),
                guide_anchor="product-cc-chat",
            ),
        )
    }
)

PRODUCT_KEYS: tuple[str, ...] = tuple(PRODUCTS)
TOKEN = "token"  # the pseudo-product of a Check row that records the token request itself


def products_granted_by(api_product_names: set[str]) -> frozenset[str]:
    """Product keys whose 8x8 ``api_product_list`` name appears in ``api_product_names``."""
    return frozenset(p.key for p in PRODUCTS.values() if p.api_product in api_product_names)
