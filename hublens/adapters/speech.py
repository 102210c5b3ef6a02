"""Spoken words from espeak-ng (Debian package ``espeak-ng``) with their English labels.

Animal names in English, French, German and Spanish, spoken with several voices, speeds and
pitches (seeded). The label of every clip is the English word, as in SALMONN-style
captioning; ``MAMMALS`` marks which animals are mammals (for the steering experiment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from hublens.adapters.audio import read_wav

#: English label → (French, German, Spanish).
ANIMALS: dict[str, tuple[str, str, str]] = {
    "dog": ("chien", "Hund", "perro"),
    "cat": ("chat", "Katze", "gato"),
    "horse": ("cheval", "Pferd", "caballo"),
    "cow": ("vache", "Kuh", "vaca"),
    "pig": ("cochon", "Schwein", "cerdo"),
    "sheep": ("mouton", "Schaf", "oveja"),
    "mouse": ("souris", "Maus", "ratón"),
    "lion": ("lion", "Löwe", "león"),
    "bear": ("ours", "Bär", "oso"),
    "rabbit": ("lapin", "Kaninchen", "conejo"),
    "bird": ("oiseau", "Vogel", "pájaro"),
    "fish": ("poisson", "Fisch", "pez"),
    "snake": ("serpent", "Schlange", "serpiente"),
    "frog": ("grenouille", "Frosch", "rana"),
    "duck": ("canard", "Ente", "pato"),
    "chicken": ("poule", "Huhn", "gallina"),
    "bee": ("abeille", "Biene", "abeja"),
    "spider": ("araignée", "Spinne", "araña"),
    "turtle": ("tortue", "Schildkröte", "tortuga"),
    "shark": ("requin", "Hai", "tiburón"),
}
MAMMALS = frozenset(
    ["dog", "cat", "horse", "cow", "pig", "sheep", "mouse", "lion", "bear", "rabbit"]
)
LANGUAGES = ("en", "fr", "de", "es")
_VARIANTS = ("", "+m3", "+f2", "+f4", "+m7", "+f1")


@dataclass(frozen=True)
class SpokenWord:
    """One clip.

    Attributes:
        key: Unique media key.
        waveform: Mono float32 samples in [-1, 1].
        sample_rate: espeak-ng's rate (22050 Hz; the adapter resamples to 16 kHz).
        label: The English word.
        language: Language code of the spoken word.
        text: The spoken word.
    """

    key: str
    waveform: np.ndarray
    sample_rate: int
    label: str
    language: str
    text: str


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is installed."""
    return shutil.which("espeak-ng") is not None


def speak(
    text: str, *, voice: str = "en", speed: int = 150, pitch: int = 50
) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with espeak-ng; returns (waveform, sample rate).

    Raises:
        RuntimeError: espeak-ng is not installed (``apt-get install espeak-ng``) or failed.
    """
    if not espeak_available():
        raise RuntimeError(
            "espeak-ng is not installed; install it (Debian: apt-get install -y espeak-ng, "
            "which scripts/install.sh does when run as root)."
        )
    with tempfile.TemporaryDirectory(prefix="hublens-espeak-") as scratch:
        path = os.path.join(scratch, "clip.wav")
        run = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, text],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0 or not os.path.exists(path):
            raise RuntimeError(f"espeak-ng failed for {text!r} ({voice}): {run.stderr.strip()}")
        waveform, rate = read_wav(path)
    nonzero = np.flatnonzero(np.abs(waveform) > 1e-3)  # trim leading/trailing silence
    if nonzero.size:
        waveform = waveform[max(0, nonzero[0] - 400) : nonzero[-1] + 400]
    return waveform, rate


def spoken_words(
    *,
    seed: int = 0,
    per_word: int = 3,
    labels: tuple[str, ...] | None = None,
    languages: tuple[str, ...] = LANGUAGES,
    prefix: str = "w",
) -> list[SpokenWord]:
    """Clips of every (animal, language), ``per_word`` voice/speed/pitch variants each.

    Args:
        seed: Seed of the variants.
        per_word: Clips per (word, language).
        labels: English labels to include (default: all of ``ANIMALS``).
        languages: Language codes among ``LANGUAGES``.
        prefix: Key prefix (keeps training and evaluation keys apart).
    """
    rng = np.random.default_rng(seed)
    out = []
    for label in labels or tuple(ANIMALS):
        words = dict(zip(LANGUAGES, (label, *ANIMALS[label]), strict=True))
        for lang in languages:
            for k in range(per_word):
                variant = _VARIANTS[int(rng.integers(len(_VARIANTS)))]
                speed, pitch = int(rng.integers(125, 185)), int(rng.integers(30, 70))
                waveform, rate = speak(words[lang], voice=lang + variant, speed=speed, pitch=pitch)
                key = f"{prefix}-{label}-{lang}-{k}"
                out.append(SpokenWord(key, waveform, rate, label, lang, words[lang]))
    return out


def training_clips(*, seed: int = 0, per_word: int = 3) -> list[SpokenWord]:
    """The audio projector's training set (keys ``train-...``)."""
    return spoken_words(seed=seed, per_word=per_word, prefix="train")
