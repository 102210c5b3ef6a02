"""The paper's steering interventions, each a ``run_*_intervention`` returning a SteeringResult.

* :mod:`~hublens.steering.interventions.arithmetic`: English "o -> o+1" vectors on "r=o+";
* :mod:`~hublens.steering.interventions.code`: ``W_U[start] - W_U[end]`` on ``range(`` calls;
* :mod:`~hublens.steering.interventions.sentiment`: English vs own-language ActAdd vectors;
* :mod:`~hublens.steering.interventions.lexicon`: the word lists that score sentiment.
"""

from collections.abc import Callable

from hublens.steering.interventions.arithmetic import run_arithmetic_intervention
from hublens.steering.interventions.code import run_code_intervention
from hublens.steering.interventions.sentiment import run_sentiment_intervention
from hublens.steering.result import SteeringResult

#: Runner of each intervention, by the name ``hublens steer`` takes.
RUNNERS: dict[str, Callable[..., SteeringResult]] = {
    "arithmetic": run_arithmetic_intervention,
    "code": run_code_intervention,
    "sentiment": run_sentiment_intervention,
}

__all__ = [
    "RUNNERS",
    "run_arithmetic_intervention",
    "run_code_intervention",
    "run_sentiment_intervention",
]
