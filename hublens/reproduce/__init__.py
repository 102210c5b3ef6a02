"""``hublens reproduce``: rerun the paper's experiments on a model, claim by claim.

:func:`reproduce` runs the scans a model supports on built-in data and judges each of the
paper's claims (:data:`CLAIMS`) by a stated rule; :func:`verdicts_for` applies the rules to rows
you already have.
"""

from hublens.reproduce.claims import CLAIMS, Claim, Verdict, middle_layers
from hublens.reproduce.run import SIZES, Reproduction, reproduce, verdicts_for

__all__ = [
    "CLAIMS",
    "SIZES",
    "Claim",
    "Reproduction",
    "Verdict",
    "middle_layers",
    "reproduce",
    "verdicts_for",
]
