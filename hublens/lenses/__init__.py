"""Fitted lenses (tuned, Jacobian) on the readout core, their artifacts and fitting.

A lens here is a :class:`hublens.hooks.lens.Lens` subclass; this package adds the fitted
kinds, the safetensors + JSON artifact format (:mod:`hublens.lenses.artifact`) and the
resolution of ``lens=`` names used by every lens analysis.
"""
