"""The synthetic store and its ground truth.

`simulate(scale, seed, out_dir)` writes a store's files (categories, items, users,
collections, inventory, events) and the latent world behind them (`GroundTruth`), which
scores any page for any user and moment. See `truth.py` for the truth model,
`logging_policy.py` for the policy that produced the logs and its propensities, and
`behaviour.py` for what counts as an impression.
"""

from shelfrank.simulate.generate import SimulationSummary, simulate
from shelfrank.simulate.scales import SCALES, ScaleSpec
from shelfrank.simulate.truth import DEFAULT_WEIGHTS, TRUTH_PARAMS, GroundTruth, PageValue

__all__ = ["DEFAULT_WEIGHTS", "SCALES", "TRUTH_PARAMS", "GroundTruth", "PageValue", "ScaleSpec",
           "SimulationSummary", "simulate"]
