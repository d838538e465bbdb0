"""`make demo`'s sample connections, in one process: each one missing is verified with the
simulator (as Connect does) and saved, then every connection is tested once so the console
opens with results. scripts/demo.sh runs it with the demo's database, keyring and simulator.

One process, because every process start pays ~2 s of imports (SQLAlchemy, pandas, httpx):
two `python -m lib` commands per connection, a `db upgrade` and a `check` made `make demo`
take ~30-47 s before the console started.

The connections use the apps of lib/simulator/sample_scenario.json; README ("Trying it with
the demo") lists their Client IDs and secrets for trying Connect by hand.
"""

from __future__ import annotations

import logging
import sys

from pydantic import SecretStr

from lib.catalogue.products import PRODUCT_KEYS
from lib.eightbyeight.prober import Prober
from lib.kernel.errors import SwitchboardError
from lib.kernel.redaction import configure_logging
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import ConnectionInput, linking
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime

SAMPLES = (
    ConnectionInput(
        name="Acme - all products",
        client_id="demo-everything",
        client_secret=SecretStr("demo-secret-everything"),
        environment="production",
        expected_products=PRODUCT_KEYS,
        analytics_region="us",
        storage_region="us-east",
        qm_region="us-east",
        chat_region="us",
        tenant_id="acme01",
        pbx="acmepbx",
    ),
    ConnectionInput(
        name="EuroTrade",
        client_id="demo-europe-multi-tenant",
        client_secret=SecretStr("demo-secret-europe"),
        environment="production",
        expected_products=("cc_realtime_analytics", "cc_historical_analytics", "cloud_storage", "cc_chat"),
        analytics_region="eu",
        storage_region="uk",
        chat_region="eu",
        tenant_id="eurotrade01",
    ),
    # Ticks chat, which 8x8 does not grant this app: the console shows the warning and the failure.
    ConnectionInput(
        name="Storage archive",
        client_id="demo-storage-only",
        client_secret=SecretStr("demo-secret-storage"),
        environment="staging",
        expected_products=("cloud_storage", "cc_chat"),
        storage_region="ap",
        chat_region="ap",
        tenant_id="archive01",
    ),
    # The scenario's faults hit this app: a 429 once, chat always 503, QM answers HTML.
    ConnectionInput(
        name="Flaky lab",
        client_id="demo-flaky",
        client_secret=SecretStr("demo-secret-flaky"),
        environment="lab",
        expected_products=("cc_realtime_analytics", "quality_management", "cc_chat"),
        analytics_region="ca",
        qm_region="ca",
        chat_region="ca",
        tenant_id="flaky01",
        pbx="flakypbx",
    ),
)


def seed() -> None:
    rt = open_runtime(create=True)  # the demo's first start: its database and keyring are made here
    actor = shell()
    stored = {view.name.casefold() for view in connections.list_connections(rt.engine)}
    prober = Prober(rt.settings.base_url)
    try:
        for sample in SAMPLES:
            if sample.name.casefold() in stored:
                continue
            view, answer = linking.save(rt, prober, sample, actor=actor)
            assert answer is not None
            warnings = "".join(f"\n  warning: {w}" for w in answer.warnings())
            print(f"Verified with the simulator and saved '{view.name}'.{warnings}", flush=True)
        report = checks.run_checks(rt, prober, triggered_by=actor)
    finally:
        prober.close()
    failing = sorted({r.connection for r in report.products if not r.ok})
    print(f"Tested {len(report.products)} products; failing on purpose: {', '.join(failing) or 'none'}.")


def main() -> None:
    configure_logging(logging.WARNING)
    try:
        seed()
    except SwitchboardError as exc:
        sys.exit(f"make demo: {exc}")


if __name__ == "__main__":
    main()
