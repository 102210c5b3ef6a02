"""Keep TransformerLens from installing packages while a model loads.

TransformerLens 4.3 calls ``_ensure_torchvision()`` when a multimodal processor cannot be loaded
(always the case offline), and that function runs ``pip install torchvision`` into the running
interpreter. A research tool must never change the environment it runs in, so every hublens load
runs inside :func:`no_package_installs`, which replaces that function by one that refuses.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

#: Module attributes of TransformerLens that install packages at run time.
_INSTALLERS: tuple[tuple[str, str], ...] = (
    ("transformer_lens.model_bridge.sources.transformers.helpers", "_ensure_torchvision"),
)
_lock = threading.RLock()


def _refuse_install() -> bool:
    """Stand-in for TransformerLens's installer: log, install nothing, report 'unavailable'."""
    logger.warning(
        "TransformerLens wanted to `pip install torchvision` to load a processor; hublens "
        "blocked it. Install torchvision yourself if you need that processor."
    )
    return False


@contextlib.contextmanager
def no_package_installs() -> Iterator[None]:
    """Context in which TransformerLens's run-time package installers are disabled.

    Example:
        >>> from hublens.install_guard import no_package_installs
        >>> with no_package_installs():
        ...     pass  # boot a TransformerBridge here
    """
    with _lock:
        saved: list[tuple[object, str, object]] = []
        try:
            for module_name, attribute in _INSTALLERS:
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    continue
                if hasattr(module, attribute):
                    saved.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, _refuse_install)
            yield
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Context in which the Hugging Face hub client makes no network request.

    ``huggingface_hub.constants.HF_HUB_OFFLINE`` is read on every call (by
    ``is_offline_mode()``, which transformers checks to force ``local_files_only``); it is set
    for the duration and restored after, so a load whose files are local cannot reach the
    network even when ``HF_HUB_OFFLINE`` is not set in the environment.
    """
    with _lock:
        try:
            from huggingface_hub import constants
        except ImportError:  # pragma: no cover - transformers depends on it
            yield
            return
        saved = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = saved
