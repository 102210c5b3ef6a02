"""One model per family for the whole matrix package (built once, in memory and saved)."""

from __future__ import annotations

import pytest

import hublens
from tests.unit.matrix.families import FAMILIES, build


@pytest.fixture(scope="package", params=FAMILIES)
def family(request, tmp_path_factory):
    """(name, HubModel, untouched plain-HF copy, saved safetensors folder) of one family."""
    hf, reference, tok = build(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    model = hublens.load_model(hf, tok)
    at_load = hublens.hooks.attached_hooks(model)  # XGLM's bridge attaches some itself
    yield request.param, model, reference, folder
    assert hublens.hooks.attached_hooks(model) == at_load, "a test left hooks attached"
