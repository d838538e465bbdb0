"""lib/ type-checks: mypy, as [tool.mypy] in pyproject.toml configures it (strict, over lib/),
reports no error. It runs as a developer would run it (`.venv/bin/mypy` in the checkout), and
keeps its incremental cache in .mypy_cache/: after a small edit a run takes seconds, while the
first run of a fresh clone reads every library lib/ imports and takes minutes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MYPY = Path(sys.executable).parent / "mypy"


@pytest.mark.slow
@pytest.mark.timeout(900)  # a cold cache on a busy machine; pyproject's 300 s suits every other test
def test_lib_has_no_type_errors() -> None:
    done = subprocess.run([str(MYPY)], cwd=ROOT, capture_output=True, text=True, timeout=840, check=False)
    assert done.returncode == 0, f"mypy found type errors in lib/:\n{done.stdout[-20000:]}{done.stderr[-5000:]}"
    assert done.stdout.startswith("Success: no issues found"), done.stdout
