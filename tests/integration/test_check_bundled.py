"""``hublens check`` passes on the bundled models (the CLI, its exit status and its JSON)."""

from __future__ import annotations

import json

import pytest

from hublens.cli import main


@pytest.mark.parametrize("name", ["gemma-3-270m", "smollm2-135m"])
def test_hublens_check_passes_on_bundled_model(name, tmp_path):
    out = tmp_path / "check.json"
    assert main(["check", name, "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["summary"]["passed"] is True
    results = {r["name"]: r for r in saved["results"]}
    assert results["numerics.last_layer_lens"]["status"] == "pass"
    assert results["numerics.hidden_states"]["status"] == "pass"
    assert results["inputs.padding"]["status"] == "pass"
    assert results["steering.kv_cache"]["status"] == "pass"
    assert results["tokens.first_shared.en"]["value"] == 0.0
