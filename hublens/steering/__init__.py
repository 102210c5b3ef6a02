"""Steering through the residual stream: vectors, the one hook, generation, results, report.

Modules (one idea each):

* :mod:`~hublens.steering.vectors`: ActAdd, unembedding-difference and mean-difference vectors;
* :mod:`~hublens.steering.hook`: :class:`SteerHook`, THE hook that writes (per-row) vectors at
  chosen positions, with the prompt-only guard for KV-cached generation;
* :mod:`~hublens.steering.attach`: ``hublens.steer`` (a ``with`` block) and its hook list;
* :mod:`~hublens.steering.generate`: steered generation, one vector per batch row;
* :mod:`~hublens.steering.checks`: argument checks (vector dtype, finiteness, overflow, grad);
* :mod:`~hublens.steering.result` / :mod:`~hublens.steering.report`: outcome tables and HTML;
* :mod:`~hublens.steering.interventions`: the paper's arithmetic, code and sentiment runs;
* :mod:`~hublens.steering.cli`: ``hublens steer``.

Example:
    >>> from hublens.steering import actadd_vector, steer  # doctest: +SKIP
    >>> v = actadd_vector(model, "Good", "Bad", layer=6)  # doctest: +SKIP
    >>> with steer(model, v, scale=4.0):  # doctest: +SKIP
    ...     model.generate("I think", max_new_tokens=10, do_sample=False)
"""

from hublens.steering.attach import steer, steering_hook_list
from hublens.steering.checks import check_layer, check_vector
from hublens.steering.generate import generate, generate_rows
from hublens.steering.hook import (
    DirectionHook,
    SteerHook,
    direction_hook,
    row_steering_hooks,
    steering_hooks,
)
from hublens.steering.result import SteeringResult, SteeringRow
from hublens.steering.vectors import (
    SteeringVector,
    actadd_vector,
    hidden_at,
    mean_difference_vector,
    unembedding_vector,
)

__all__ = [
    "DirectionHook",
    "SteerHook",
    "SteeringResult",
    "SteeringRow",
    "SteeringVector",
    "actadd_vector",
    "check_layer",
    "check_vector",
    "direction_hook",
    "generate",
    "generate_rows",
    "hidden_at",
    "mean_difference_vector",
    "row_steering_hooks",
    "steer",
    "steering_hook_list",
    "steering_hooks",
    "unembedding_vector",
]
