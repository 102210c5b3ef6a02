"""Variant names of the scan-throughput benchmark."""

HUBLENS = "hublens semantic_hub_scan"
REFERENCE = "plain transformers (output_hidden_states, all states kept)"
NNSIGHT = "nnsight trace (layer outputs saved), same metrics"
