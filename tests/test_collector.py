"""lib.kernel.collector, in a process of its own (the collector's settings are the whole process's)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.server import ROOT

PROBE = """
import gc, json
from lib.kernel import collector
young, middle, _ = gc.get_threshold()
with collector.paused():
    during = gc.isenabled()
    kept = [[] for _ in range(1000)]
print(json.dumps({"during": during, "after": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "kept": len(kept), "threshold": gc.get_threshold(), "was": [young, middle]}))
"""


def test_imports_run_without_collections_then_what_they_loaded_is_frozen_and_full_passes_are_rarer() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen["during"] is False and seen["after"] is True
    assert seen["frozen"] >= 1000  # at least the lists made while paused
    assert seen["threshold"] == [*seen["was"], 100]
