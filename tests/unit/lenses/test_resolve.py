"""resolve_lenses / check_lens_spec: what lens= accepts, and every refusal before a forward."""

from __future__ import annotations

import pytest
import torch

from hublens.hooks import LogitLens
from hublens.hooks.lens import Lens
from hublens.hooks.readout import Unembed
from hublens.lenses import LENS_NAMES, LensArtifactError, NamedLens, resolve_lenses
from hublens.lenses.artifact import ModelFingerprint, save_artifact
from hublens.lenses.resolve import check_lens_spec
from tests.helpers.lens_option_cases import WORDS, model_for


class Shift(Lens):
    def __init__(self, model, name=None, n_layers=None):
        super().__init__(Unembed.from_model(model), final_norm=True,
                         n_layers=model.n_layers if n_layers is None else n_layers)  # fmt: skip
        if name is not None:
            self.name = name

    def transform(self, h, layer):
        return h + 1.0


@pytest.fixture(scope="module")
def model():
    return model_for("probe")[0]


def _forwards(model):
    """A counter of forward calls on the model's bridge (the HF module tree under it)."""
    calls = []
    handle = model.bridge.register_forward_pre_hook(lambda m, a: calls.append(1))
    return calls, handle


def test_logit_names_and_none(model):
    logit, raw = resolve_lenses(model, ["logit", "logit-raw"])
    assert isinstance(logit, NamedLens) and logit.name == "logit" and raw.name == "logit-raw"
    assert isinstance(logit.lens, LogitLens) and logit.lens.final_norm is True
    assert raw.lens.final_norm is False and raw.lens.n_layers == model.n_layers
    assert logit.provenance["kind"] == "logit" and logit.provenance["fit"] is None
    assert [n.name for n in resolve_lenses(model, None, final_norm=False)] == ["logit-raw"]
    assert [n.name for n in resolve_lenses(model, None)] == ["logit"]
    assert [n.name for n in resolve_lenses(model, "logit")] == ["logit"]


def test_lens_objects_are_named_by_name_or_class(model):
    named = resolve_lenses(model, [Shift(model), Shift(model, name="mine"), "logit"])
    assert [n.name for n in named] == ["Shift", "mine", "logit"]
    assert named[0].provenance["kind"] == "custom"
    assert named[0].provenance["class"].endswith("Shift")


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("tunned", ValueError, "valid names: logit, logit-raw, tuned, jacobian"),
        ("logit,tuned", ValueError, "pass a list"),
        (["logit", "logit"], ValueError, "more than once"),
        ([], ValueError, "at least one lens"),
        (3, TypeError, "lens name"),
        (["logit", 3], TypeError, "lens name"),
    ],
)
def test_bad_specs_are_refused_without_a_model(spec, error, match):
    with pytest.raises(error, match=match):
        check_lens_spec(spec)


def test_a_folder_that_is_not_a_lens(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"not read")
    with pytest.raises(LensArtifactError, match="not a hublens lens folder"):
        check_lens_spec(tmp_path)
    with pytest.raises(LensArtifactError, match="does not exist"):
        check_lens_spec(str(tmp_path / "missing") + "/")


def test_a_lens_folder_for_another_model_is_refused_before_any_forward(model, tmp_path):
    from hublens import semantic_hub_scan
    from hublens.analyses import TranslationLens
    from hublens.data import ParallelData

    other = ModelFingerprint("other", model.d_model * 2, model.n_layers, model.d_vocab)
    folder = save_artifact(tmp_path / "tuned", {"a": torch.zeros(2)},
                           {"kind": "tuned", "model": other.to_dict()})  # fmt: skip
    assert check_lens_spec(folder) == ["tuned"]  # a lens folder, of kind tuned
    calls, handle = _forwards(model)
    try:
        probe = TranslationLens(dominant="en", few_shot=1, lens=["logit", folder])
        with pytest.raises(LensArtifactError, match="d_model"):
            semantic_hub_scan(model, ParallelData.from_records(WORDS, name="w"),
                              analyses=[probe], progress=False)  # fmt: skip
    finally:
        handle.remove()
    assert calls == []


def test_a_lens_object_for_another_model_is_refused_before_any_forward(model):
    from hublens import semantic_hub_scan
    from hublens.analyses import TranslationLens
    from hublens.data import ParallelData

    calls, handle = _forwards(model)
    try:
        probe = TranslationLens(dominant="en", few_shot=1, lens=Shift(model, n_layers=7))
        with pytest.raises(ValueError, match="built for 7 layers"):
            semantic_hub_scan(model, ParallelData.from_records(WORDS, name="w"),
                              analyses=[probe], progress=False)  # fmt: skip
    finally:
        handle.remove()
    assert calls == []


def test_the_names_are_the_documented_ones():
    assert LENS_NAMES == ("logit", "logit-raw", "tuned", "jacobian")
