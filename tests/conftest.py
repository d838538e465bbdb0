"""Shared pytest setup. Fixture modules live in tests/fixtures/ and are registered here."""

import pytest

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.storage",
    "tests.fixtures.simulator",
    "tests.fixtures.prober",
    "tests.fixtures.console",
    "tests.fixtures.alerts",
    "tests.fixtures.answers",
]


# The suite runs fastest tier first, so a unit failure is reported before the browser tests
# have run: modules of plain tests, then modules with slow or PostgreSQL tests, then the
# end-to-end ones (Chromium, nginx, several servers). A module moves as a whole, keeping its
# order and its module-scoped fixtures set up once.
_TIERS = (("e2e", 2), ("slow", 1), ("postgres", 1))


def _tier(item: pytest.Item) -> int:
    return max((tier for name, tier in _TIERS if item.get_closest_marker(name)), default=0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tier_of: dict[str, int] = {}
    for item in items:
        tier_of[item.nodeid.split("::")[0]] = max(tier_of.get(item.nodeid.split("::")[0], 0), _tier(item))
    items.sort(key=lambda item: tier_of[item.nodeid.split("::")[0]])
