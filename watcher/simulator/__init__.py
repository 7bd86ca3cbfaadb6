"""A local EC2 Image Builder endpoint that plays out scenarios.

It speaks the real wire protocol, so the unmodified aiobotocore client and the
AWS CLI talk to it with an endpoint URL; the same endpoint serves each build's log
as CloudWatch Logs GetLogEvents. It knows nothing of the watcher.
"""

from watcher.simulator.faults import Counters
from watcher.simulator.scenario import Scenario, ScenarioError, Step, load_scenario
from watcher.simulator.server import Simulator

__all__ = ["Counters", "Scenario", "ScenarioError", "Simulator", "Step", "load_scenario"]
