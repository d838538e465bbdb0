"""lib/ is built in layers, and its folders are the layers (docs, "How the code is laid out");
import-linter checks the contracts in pyproject.toml, and every top-level part of lib/ and of
lib/services/ must be placed in a layer."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _layers(container: str | None) -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in config if c["type"] == "layers" and (c.get("containers") or [None])[0] == container)[
        "layers"
    ]


def _parts(folder: Path, prefix: str) -> set[str]:
    return {
        f"{prefix}{p.stem}"
        for p in folder.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }


def _placed(layers: list[str]) -> set[str]:
    return {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}


def test_every_part_of_lib_has_a_layer() -> None:
    parts, placed = _parts(ROOT / "lib", "lib."), _placed(_layers(None))
    assert parts == placed, {"not in a layer": sorted(parts - placed), "no such part": sorted(placed - parts)}


def test_every_service_has_a_layer_and_siblings_in_a_layer_are_independent() -> None:
    layers = _layers("lib.services")
    parts, placed = _parts(ROOT / "lib" / "services", ""), _placed(layers)
    assert parts == placed, {"not in a layer": sorted(parts - placed), "no such part": sorted(placed - parts)}
    assert not any(":" in layer for layer in layers), "siblings in a services layer must be independent (|)"


def test_the_readmes_layer_picture_puts_every_part_where_the_contracts_do() -> None:
    """ "How the code is laid out" (in the README or docs/): one block per layer of the contract
    (lib.__main__ aside), top to bottom, separated by arrows; each block names every part of
    its layer."""
    layers = [layer for layer in _layers(None) if layer != "lib.__main__"]
    text = next(
        t
        for t in (p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])
        if "## How the code is laid out" in t
    )
    picture = text.split("## How the code is laid out", 1)[1].split("```", 2)[1]
    blocks = [block for block in re.split(r"\n(?:[ |]*\n)*[ |]*v[ v]*\n", picture) if block.strip()]
    assert len(blocks) == len(layers), blocks
    for block, layer in zip(blocks, layers, strict=True):
        names = [name.strip().removeprefix("lib.") for name in re.split(r"[|:]", layer)]
        missing = [name for name in names if not re.search(rf"(?<!\w){name}(?!\w)", block)]
        assert not missing, (layer, missing, block)


def test_the_server_module_imports_nothing_heavy() -> None:
    """`streamlit run serve.py` answers /healthz before the database layer (SQLAlchemy, the
    table models, pydantic, cryptography) loads: it comes with the thread that opens the data
    (lib.web.lifecycle). pandas, httpx, prometheus_client, alembic and openpyxl come later still,
    with the first request (or the worker) that needs them."""
    heavy = (
        "sqlalchemy",
        "sqlmodel",
        "pydantic",
        "cryptography",
        "lib.store",
        "lib.services.runtime",
        "lib.web.open_server",
        "pandas",
        "httpx",
        "prometheus_client",
        "alembic",
        "openpyxl",
        "lib.services.checking.worker",
        "lib.eightbyeight.prober",
    )
    probe = f"import sys, serve; print([m for m in {list(heavy)!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
