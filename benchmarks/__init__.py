"""hublens benchmarks: ratios measured side by side in one run, written to results files."""
