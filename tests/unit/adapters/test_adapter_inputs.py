"""Bad input, resampling, the CTranslate2 reader and the projector file, without real weights."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest
import torch

from hublens.adapters.audio import prepare_waveform, read_wav, resample
from hublens.adapters.efficientnet import prepare_image
from hublens.adapters.images import COLOURS, halves, solid
from hublens.adapters.projector import MLPProjector, ProjectorConfig
from hublens.adapters.whisper_ct2 import encoder_state_dict, log_mel, read_ct2


# ---- images -------------------------------------------------------------------------------
def test_prepare_image_normalises_like_mean_std_half():
    image = solid("red", seed=1)
    x = prepare_image(image)
    assert x.shape == (1, 3, 224, 224)
    expected = (image[10, 20].astype(np.float32) / 255 - 0.5) / 0.5
    assert torch.allclose(x[0, :, 10, 20], torch.from_numpy(expected))
    assert torch.equal(prepare_image(image.astype(np.float32) / 255), x)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((100, 100, 3), np.uint8), "resize it to 224x224"),
        (np.zeros((224, 224), np.uint8), "1 channel"),
        (np.zeros((224, 224, 4), np.uint8), "4 channel"),
        (np.full((224, 224, 3), 2.0, np.float32), r"floats in \[0, 1\]"),
        (np.full((224, 224, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_prepare_image_rejects_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        prepare_image(image)


def test_prepare_image_rejects_non_arrays_and_non_rgb_pil_like():
    with pytest.raises(TypeError, match="RGB uint8 array"):
        prepare_image([[0, 0, 0]])

    class FakePIL:  # what PIL.Image.Image exposes
        mode, size = "L", (224, 224)

    with pytest.raises(ValueError, match=r"convert\('RGB'\)"):
        prepare_image(FakePIL())


def test_generated_images_show_their_colours():
    image = halves("red", "blue", seed=0)
    top, bottom = image[:112].reshape(-1, 3).mean(0), image[112:].reshape(-1, 3).mean(0)
    assert np.abs(top - COLOURS["red"]).max() < 25
    assert np.abs(bottom - COLOURS["blue"]).max() < 25


# ---- audio --------------------------------------------------------------------------------
def _tone(freq, rate, seconds=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_resampling_keeps_the_frequency_and_length():
    x = _tone(440.0, 22050)
    y = resample(x, 22050)
    assert len(y) == 8000
    spectrum = np.abs(np.fft.rfft(y))
    peak_hz = np.argmax(spectrum) * 16000 / len(y)
    assert abs(peak_hz - 440.0) < 2.5
    assert abs(np.abs(y).max() - 0.5) < 0.02
    assert np.array_equal(resample(x, 16000), x)


def test_prepare_waveform_resamples_int16_and_reads_wav(tmp_path):
    x = _tone(300.0, 8000)
    pcm = (x * 32767).astype(np.int16)
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(pcm.tobytes())
    read, rate = read_wav(path)
    assert rate == 8000 and np.abs(read - x).max() < 1e-3
    y = prepare_waveform(path, max_seconds=1.5)
    assert len(y) == 8000  # 0.5 s at 16 kHz
    z = prepare_waveform((pcm, 8000), max_seconds=1.5)
    assert np.abs(y - z).max() < 1e-3


@pytest.mark.parametrize(
    "raw, match",
    [
        ((np.zeros(0, np.float32), 16000), "empty"),
        ((np.zeros(8000, np.float32), 16000), "silent"),
        ((np.zeros((2, 8000), np.float32) + 0.1, 16000), "mono"),
        ((_tone(200.0, 16000, seconds=2.0), 16000), "at most 1.5 s"),
        ((_tone(200.0, 16000) * 3, 16000), r"\[-1, 1\]"),
        ((_tone(200.0, 16000), 0), "sample_rate=0"),
        ((np.full(800, np.nan, np.float32), 16000), "NaN"),
    ],
)
def test_prepare_waveform_rejects_bad_clips(raw, match):
    with pytest.raises(ValueError, match=match):
        prepare_waveform(raw, max_seconds=1.5)


def test_prepare_waveform_rejects_other_types():
    with pytest.raises(TypeError, match="sample_rate"):
        prepare_waveform(np.zeros(10), max_seconds=1.5)


def test_log_mel_matches_transformers_feature_extractor():
    from transformers import WhisperFeatureExtractor

    x = _tone(500.0, 16000)
    ours = log_mel(x, frames=3000)
    theirs = WhisperFeatureExtractor(feature_size=80)(
        x, sampling_rate=16000, return_tensors="np"
    ).input_features  # pads to 30 s itself
    assert ours.shape == (1, 80, 3000)
    assert np.abs(ours.numpy() - theirs).max() < 1e-5
    assert torch.equal(log_mel(x, frames=150), ours[:, :, :150])


# ---- CTranslate2 reader ------------------------------------------------------------------
def _string(text):
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name, array, code):
    out = _string(name) + struct.pack("<B", array.ndim)
    out += struct.pack(f"<{array.ndim}I", *array.shape) + struct.pack("<B", code)
    return out + struct.pack("<I", array.nbytes) + array.tobytes()


def _fake_whisper(rng, d=8, layers=2):
    arrays = {
        "encoder/conv1/weight": rng.normal(size=(d, 4, 3)),
        "encoder/conv1/bias": rng.normal(size=d),
        "encoder/conv2/weight": rng.normal(size=(d, d, 3)),
        "encoder/conv2/bias": rng.normal(size=d),
        "encoder/position_encodings/encodings": rng.normal(size=(6, d)),
        "encoder/layer_norm/gamma": rng.normal(size=d),
        "encoder/layer_norm/beta": rng.normal(size=d),
    }
    for i in range(layers):
        p = f"encoder/layer_{i}"
        arrays[f"{p}/self_attention/linear_0/weight"] = rng.normal(size=(3 * d, d))
        arrays[f"{p}/self_attention/linear_0/bias"] = rng.normal(size=3 * d)
        arrays[f"{p}/self_attention/linear_1/weight"] = rng.normal(size=(d, d))
        arrays[f"{p}/self_attention/linear_1/bias"] = rng.normal(size=d)
        for ln in ("self_attention", "ffn"):
            arrays[f"{p}/{ln}/layer_norm/gamma"] = rng.normal(size=d)
            arrays[f"{p}/{ln}/layer_norm/beta"] = rng.normal(size=d)
        arrays[f"{p}/ffn/linear_0/weight"] = rng.normal(size=(2 * d, d))
        arrays[f"{p}/ffn/linear_0/bias"] = rng.normal(size=2 * d)
        arrays[f"{p}/ffn/linear_1/weight"] = rng.normal(size=(d, 2 * d))
        arrays[f"{p}/ffn/linear_1/bias"] = rng.normal(size=d)
    return {k: v.astype(np.float16) for k, v in arrays.items()}


def test_ct2_reader_reads_split_files_and_maps_qkv(tmp_path):
    rng = np.random.default_rng(0)
    arrays = _fake_whisper(rng)
    arrays["decoder/embeddings/weight"] = rng.normal(size=(5, 8)).astype(np.float16)
    blob = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<I", 3)
    blob += struct.pack("<I", len(arrays) + 1)
    for name, array in arrays.items():
        blob += _variable(name, array, 4)
    blob += _variable("encoder/num_heads", np.array(2, np.int16), 2)
    blob += struct.pack("<I", 1) + _string("alias/x") + _string("encoder/conv1/bias")
    cut = len(blob) // 3
    (tmp_path / "part1").write_bytes(blob[:cut])
    (tmp_path / "part2").write_bytes(blob[cut:])
    variables, aliases = read_ct2([tmp_path / "part1", tmp_path / "part2"], prefix="encoder/")
    assert "decoder/embeddings/weight" not in variables
    assert aliases == {"alias/x": "encoder/conv1/bias"}
    for name, array in arrays.items():
        if name.startswith("encoder/"):
            assert np.array_equal(variables[name], array), name
    sd = encoder_state_dict(variables)
    qkv = arrays["encoder/layer_1/self_attention/linear_0/weight"].astype(np.float32)
    assert np.array_equal(sd["layers.1.self_attn.k_proj.weight"].numpy(), qkv[8:16])
    assert np.array_equal(sd["layers.1.self_attn.v_proj.weight"].numpy(), qkv[16:])
    assert "layers.1.self_attn.k_proj.bias" not in sd  # Whisper's k has no bias
    (tmp_path / "short").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_ct2(tmp_path / "short")


# ---- projector ----------------------------------------------------------------------------
def test_projector_pools_windows_and_round_trips(tmp_path):
    torch.manual_seed(0)
    proj = MLPProjector(ProjectorConfig(d_in=6, d_out=4, hidden=5, window=3)).eval()
    x = torch.randn(7, 6)
    pooled = torch.stack([x[0:3].mean(0), x[3:6].mean(0), x[6:7].mean(0)])
    h = torch.nn.functional.layer_norm(pooled, (6,), proj.norm.weight, proj.norm.bias)
    expected = torch.nn.functional.gelu(h @ proj.fc1.weight.T + proj.fc1.bias)
    expected = expected @ proj.fc2.weight.T + proj.fc2.bias
    assert torch.allclose(proj(x), expected, atol=1e-6)
    path = proj.save(tmp_path / "p.safetensors", record={"command": "hublens x"})
    loaded, record = MLPProjector.load(path)
    assert record == {"command": "hublens x"}
    assert loaded.config == proj.config
    assert torch.allclose(loaded(x), proj(x), atol=1e-2)  # stored in fp16
    with pytest.raises(FileNotFoundError, match="train-projector"):
        MLPProjector.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="width 6"):
        proj(torch.randn(2, 5))
