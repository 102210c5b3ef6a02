"""Steering hooks, re-exported from :mod:`hublens.steering.hook` (where the one hook lives).

``from hublens.hooks import SteerHook, steering_hooks`` keeps working; the hook, its per-row
form and the prompt-only guard are documented there.
"""

from hublens.steering.hook import SteerHook, row_steering_hooks, steering_hooks

__all__ = ["SteerHook", "row_steering_hooks", "steering_hooks"]
