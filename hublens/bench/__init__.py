"""Benchmarks of hublens against bare transformers, the bare bridge, TransformerLens and nnsight.

Run ``hublens bench --model NAME`` (your model, optionally ``--hooks module:function`` for your
own hooks) or ``python -m benchmarks.run`` (the bundled models, results into docs/benchmarks.md).

Example:
    >>> from hublens.bench.suite import Settings, run_suite
    >>> results = run_suite(["tiny-llama"], Settings(repeats=3))  # doctest: +SKIP
"""
