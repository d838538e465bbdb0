"""A local 8x8 API simulator: the token endpoint and the five product probes, on 127.0.0.1.

See README.md beside this file for the scenario format, the routes and the control API.
"""

from lib.simulator.app import SimulatorState, create_app
from lib.simulator.scenario import (
    App,
    Fault,
    Scenario,
    ScenarioError,
    load_scenario,
)
from lib.simulator.server import SAMPLE_SCENARIO, SimulatorServer, TLSFiles, serve

__all__ = [
    "SAMPLE_SCENARIO",
    "App",
    "Fault",
    "Scenario",
    "ScenarioError",
    "SimulatorServer",
    "SimulatorState",
    "TLSFiles",
    "create_app",
    "load_scenario",
    "serve",
]
