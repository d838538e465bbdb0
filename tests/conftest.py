"""Shared pytest setup. Fixture modules live in tests/fixtures/ and are registered here."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.storage",
    "tests.fixtures.simulator",
    "tests.fixtures.prober",
    "tests.fixtures.console",
    "tests.fixtures.alerts",
    "tests.fixtures.answers",
]
