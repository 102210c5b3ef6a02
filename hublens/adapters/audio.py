"""Audio input: WAV reading, resampling to 16 kHz, checks, and the clip encoder.

A clip is ``(waveform, sample_rate)`` (mono, float in [-1, 1] or int16) or a path to a WAV
file. Clips at another rate are resampled to 16 kHz (band-limited, by FFT); empty, silent,
non-finite, multi-channel or too long clips raise ValueError before any forward pass.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float
from torch import Tensor, nn

from hublens.adapters.whisper_ct2 import HOP, SAMPLE_RATE, WhisperEncoder, log_mel

#: Peak amplitude below which a clip counts as silent.
SILENCE = 1e-4


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file as (float32 mono waveform in [-1, 1], sample rate).

    Raises:
        ValueError: Not 8/16/32-bit PCM, or more than one channel.
    """
    with wave.open(str(path), "rb") as handle:
        channels, width, rate = handle.getnchannels(), handle.getsampwidth(), handle.getframerate()
        frames = handle.readframes(handle.getnframes())
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None:
        raise ValueError(f"{str(path)!r}: {8 * width}-bit WAV; pass 8, 16 or 32-bit PCM.")
    scale = 128.0 if width == 1 else float(np.iinfo(dtype).max)  # type: ignore[type-var]
    x = np.frombuffer(frames, dtype=dtype).astype(np.float32)
    x = ((x - 128.0) if width == 1 else x) / scale
    if channels != 1:
        raise ValueError(f"{str(path)!r} has {channels} channels; pass mono (mix down first).")
    return x, rate


def resample(waveform: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by FFT (the spectrum is cut or zero-padded).

    Example:
        >>> len(resample(np.zeros(22050, np.float32), 22050))
        16000
    """
    if rate == target:
        return waveform.astype(np.float32)
    n_out = int(round(len(waveform) * target / rate))
    spectrum = np.fft.rfft(waveform.astype(np.float64))
    keep = n_out // 2 + 1
    out_spec = np.zeros(keep, dtype=np.complex128)
    m = min(keep, len(spectrum))
    out_spec[:m] = spectrum[:m]
    return (np.fft.irfft(out_spec, n_out) * (n_out / len(waveform))).astype(np.float32)


def prepare_waveform(raw: Any, *, max_seconds: float) -> np.ndarray:
    """Check one clip and return it as float32 mono at 16 kHz.

    Args:
        raw: ``(waveform, sample_rate)`` or a WAV path.
        max_seconds: Longest clip accepted.

    Raises:
        TypeError: Not a pair or a path.
        ValueError: Empty, silent, non-finite, multi-channel, too long, or a bad sample rate.
    """
    if isinstance(raw, (str, os.PathLike)):
        waveform, rate = read_wav(Path(raw))
    elif isinstance(raw, tuple) and len(raw) == 2:
        waveform, rate = raw
    else:
        raise TypeError(
            f"audio={type(raw).__name__}: pass (waveform, sample_rate) or a WAV file path."
        )
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1000:
        raise ValueError(f"sample_rate={rate!r}: pass the clip's rate in Hz, e.g. 16000.")
    x = np.asarray(waveform)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"waveform has shape {x.shape}; pass a mono 1-D array (mix down first).")
    if x.size == 0:
        raise ValueError("waveform is empty; pass a clip with sound.")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("waveform contains NaN or infinite values.")
    if np.abs(x).max() > 1.0 + 1e-6:
        raise ValueError(
            f"waveform peaks at {np.abs(x).max():.3g}; pass floats in [-1, 1] or int16 samples."
        )
    if np.abs(x).max() < SILENCE:
        raise ValueError(
            f"waveform is silent (peak {np.abs(x).max():.2g} < {SILENCE}); pass a clip with sound."
        )
    seconds = len(x) / rate
    if seconds > max_seconds:
        raise ValueError(
            f"the clip lasts {seconds:.2f} s; this encoder takes at most {max_seconds:g} s: cut it."
        )
    return resample(x, int(rate))


class WhisperClipEncoder(nn.Module):
    """Short clips through Whisper's encoder: the first ``keep`` rows (20 ms each).

    The encoder runs on a log-mel window of ``2 * keep`` frames (whisper.cpp's reduced
    ``audio_ctx``); the clip must fit in it.

    Attributes:
        encoder: The Whisper encoder.
        keep: Encoder rows per clip (50 per second).
    """

    def __init__(self, encoder: WhisperEncoder, *, keep: int = 100) -> None:
        super().__init__()
        self.encoder = encoder
        self.keep = keep

    @property
    def max_seconds(self) -> float:
        """Longest clip this encoder takes."""
        return self.keep * 2 * HOP / SAMPLE_RATE

    def prepare(self, raw: Any) -> Float[Tensor, "1 80 frames"]:
        """Check and convert one clip to log-mel features of ``2 * keep`` frames."""
        return log_mel(prepare_waveform(raw, max_seconds=self.max_seconds), frames=2 * self.keep)

    def forward(self, mel: Float[Tensor, "1 80 frames"]) -> Float[Tensor, "1 keep 512"]:
        """Encoder rows of one clip."""
        return self.encoder(mel)[:, : self.keep]
