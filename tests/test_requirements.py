"""A fresh install is the tested install: requirements.txt and requirements-dev.txt agree with
constraints.txt (every requirement is met by the version pinned there), constraints.txt pins
every package of this venv exactly as installed (and nothing else), and the libraries whose
internals the adapters reach into are pinned exactly at the version each adapter names."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lib.kernel.internals import Library
from lib.ui.streamlit_internals import STREAMLIT
from lib.web.uvicorn_internals import UVICORN

ROOT = Path(__file__).resolve().parent.parent
NOT_PINNED = {"pip", "switchboard"}  # the installer (`make` upgrades it) and this checkout, editable


def requirements(name: str) -> list[Requirement]:
    """The requirements a file names, those of the files it includes (``-r``) too."""
    found: list[Requirement] = []
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += requirements(line.removeprefix("-r ").strip())
        elif line:
            found.append(Requirement(line))
    return found


def constraints() -> dict[NormalizedName, Version]:
    pinned: dict[NormalizedName, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        # name==version only: no URL, path, editable or option, so it installs from the registry
        assert sep and Requirement(line).name == name and not Requirement(line).url, line
        assert canonicalize_name(name) not in pinned, f"{name} is pinned twice"
        pinned[canonicalize_name(name)] = Version(version)
    return pinned


@pytest.mark.parametrize("file", ["requirements.txt", "requirements-dev.txt"])
def test_every_requirement_is_met_by_its_pinned_version(file: str) -> None:
    pinned = constraints()
    for requirement in requirements(file):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} ({file}) is not in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{requirement} ({file}) is not met by {name}=={pinned[name]} (constraints.txt)"
        )


def test_the_venv_is_exactly_what_constraints_txt_pins() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version) for d in metadata.distributions()}
    for name in NOT_PINNED:
        installed.pop(canonicalize_name(name), None)
    pinned = constraints()
    assert {n: v for n, v in installed.items() if pinned.get(n) != v} == {}, "installed, not as pinned"
    assert {n: v for n, v in pinned.items() if installed.get(n) != v} == {}, "pinned, not installed"


@pytest.mark.parametrize("library", [STREAMLIT, UVICORN], ids=lambda library: library.name)
def test_what_the_adapters_reach_into_is_pinned_exactly_at_the_tested_version(library: Library) -> None:
    (requirement,) = [r for r in requirements("requirements.txt") if canonicalize_name(r.name) == library.name]
    assert str(requirement.specifier) == f"=={library.tested}"
    assert constraints()[canonicalize_name(library.name)] == Version(library.tested)
