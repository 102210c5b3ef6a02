"""The corpus a lens is fitted on: offline, licence-clean, multilingual, disjoint from evaluation.

The default corpus is text the model itself samples (temperature 1, no top-k/top-p) from short
seeded opening prompts in a fixed mix of languages, equal shares. The prompts are written for
this purpose (not evaluation items). Any sample sharing an 8-gram with a text of any built-in
evaluation data set (:data:`hublens.data.builtin.BUILTIN_DATASETS`, default options) is dropped;
n-grams count words, and each CJK character (Han, kana, Hangul) as one unit. Being the model's
own text, its bias is the model's: a lens fitted on it learns what the model writes after
these openings (recorded in :attr:`Corpus.how`). The corpus is cached per model under
``cache_root()/corpora/`` so that fits do not sample it again.

``Corpus.from_file(path)`` reads a user's corpus instead (one text per line, UTF-8).

Example:
    >>> corpus = default_corpus(model, n_texts=100, seed=0)  # doctest: +SKIP
    >>> corpus.name, corpus.sha256[:12], corpus.languages  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hublens.atomic import write_text_atomic
from hublens.cache import cache_root

#: Bumped whenever the prompts or the sampling recipe change (it names the cache file).
RECIPE_VERSION = 1
#: New tokens sampled per text.
MAX_NEW_TOKENS = 40
#: n-gram length of the disjointness check.
NGRAM = 8
#: Opening prompts, written for the lens corpus (short, generic, not evaluation items).
PROMPTS: Mapping[str, tuple[str, ...]] = {
    "en": ("In the morning, the old town", "My grandmother always said that", "The report"),
    "fr": ("Ce matin, dans la vieille ville,", "Ma grand-mère disait toujours que", "Le rapport"),
    "de": ("Heute Morgen in der Altstadt", "Meine Großmutter sagte immer, dass", "Der Bericht"),
    "es": ("Esta mañana, en el casco antiguo,", "Mi abuela siempre decía que", "El informe"),
    "it": ("Stamattina, nel centro storico,", "Mia nonna diceva sempre che", "La relazione"),
    "pt": ("Hoje de manhã, na cidade velha,", "A minha avó dizia sempre que", "O relatório"),
    "ru": ("Сегодня утром в старом городе", "Моя бабушка всегда говорила, что", "Отчёт"),
    "ja": ("今朝、古い町では", "祖母はいつも言っていた。", "報告書によると"),
    "zh": ("今天早上，在老城区，", "我的奶奶总是说", "报告显示"),
    "ko": ("오늘 아침 구시가지에서", "할머니는 항상 말씀하셨다", "보고서에 따르면"),
}
LANGUAGES: tuple[str, ...] = tuple(PROMPTS)
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_UNIT = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Lower-cased n-grams of words, each CJK character counting as one unit."""
    units = _UNIT.findall(text.lower())
    return {tuple(units[i : i + n]) for i in range(len(units) - n + 1)}


def texts_sha256(texts: Sequence[str]) -> str:
    """sha256 of the texts, in order (UTF-8, each text prefixed by its byte length)."""
    digest = hashlib.sha256()
    for text in texts:
        raw = text.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


@dataclass(frozen=True)
class Corpus:
    """Texts a lens is fitted on, with how they were made.

    Attributes:
        texts: The texts.
        name: A short name (``"model-samples-v1"`` or the file's name).
        sha256: :func:`texts_sha256` of ``texts``.
        languages: Number of texts per language code (``{"unknown": n}`` for a user file).
        how: How the corpus was made (recipe, prompts, seed, sizes, dropped samples).
    """

    texts: tuple[str, ...]
    name: str
    sha256: str
    languages: Mapping[str, int]
    how: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.texts:
            raise ValueError(f"Corpus {self.name!r} holds no texts; give at least one.")
        if texts_sha256(self.texts) != self.sha256:
            raise ValueError(f"Corpus {self.name!r}: sha256 does not match its texts.")

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        *,
        name: str,
        languages: Mapping[str, int] | None = None,
        how: Mapping[str, Any] | None = None,
    ) -> Corpus:
        """A corpus of ``texts`` (blank texts are refused)."""
        items = tuple(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"texts[{i}]={text!r}: every corpus text must be non-blank.")
        return cls(
            texts=items,
            name=name,
            sha256=texts_sha256(items),
            languages=dict(languages or {"unknown": len(items)}),
            how=dict(how or {}),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Corpus:
        """Read a corpus file: one text per line, UTF-8; blank lines are skipped.

        Raises:
            ValueError: The file is missing, not UTF-8, or has no text.
        """
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"--corpus {file}: no such file; pass a UTF-8 file, one text a line.")
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise ValueError(f"--corpus {file} is not UTF-8 ({exc}); re-encode it.") from None
        texts = [line for line in lines if line.strip()]
        if not texts:
            raise ValueError(f"--corpus {file} holds no text; write one text per line.")
        return cls.from_texts(
            texts, name=file.name, how={"recipe": "user file", "path": str(file.resolve())}
        )

    def record(self) -> dict[str, Any]:
        """JSON-ready description without the texts (for a lens's provenance)."""
        n_chars = sum(len(t) for t in self.texts)
        return {
            "name": self.name,
            "sha256": self.sha256,
            "n_texts": len(self.texts),
            "n_chars": n_chars,
            "languages": dict(self.languages),
            "how": dict(self.how),
        }

    def to_json(self) -> str:
        """The corpus with its texts, as JSON."""
        return json.dumps({**self.record(), "texts": list(self.texts)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Corpus:
        """Inverse of :meth:`to_json` (the sha256 is checked)."""
        data = json.loads(text)
        return cls(
            texts=tuple(data["texts"]),
            name=data["name"],
            sha256=data["sha256"],
            languages=data["languages"],
            how=data["how"],
        )


def evaluation_ngrams() -> set[tuple[str, ...]]:
    """Every 8-gram of every text of every built-in data set (default options)."""
    from hublens.data.builtin import BUILTIN_DATASETS, load_builtin

    grams: set[tuple[str, ...]] = set()
    for name in BUILTIN_DATASETS:
        for item in load_builtin(name).items:
            for text in item.values():
                grams |= ngrams(text)
    return grams


def _model_key(model: Any) -> str:
    name = str(getattr(getattr(model, "provenance", None), "name", "object"))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"
    return f"{safe}-{int(model.d_model)}x{int(model.n_layers)}"


def corpus_cache_path(model: Any, *, n_texts: int, seed: int) -> Path:
    """Where :func:`default_corpus` caches the corpus of this model, size and seed."""
    name = f"samples-v{RECIPE_VERSION}-n{n_texts}-seed{seed}.json"
    return cache_root() / "corpora" / _model_key(model) / name


def _plan(n_texts: int) -> list[tuple[str, str]]:
    """(language, prompt) per text: equal shares per language, prompts in turn."""
    plan = []
    for i in range(n_texts):
        language = LANGUAGES[i % len(LANGUAGES)]
        prompts = PROMPTS[language]
        plan.append((language, prompts[(i // len(LANGUAGES)) % len(prompts)]))
    return plan


@torch.no_grad()
def _sample(model: Any, prompts: list[str], seed: int, batch_size: int) -> list[str]:
    """Sample one continuation per prompt (temperature 1, full distribution), seeded."""
    hf = model.bridge.original_model
    tokenizer = model.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    bos = [tokenizer.bos_token_id] if model.prepend_bos else []
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        rows = [bos + tokenizer.encode(p, add_special_tokens=False) for p in chunk]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding, as batched generation needs
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        with torch.random.fork_rng(devices=[]):  # the caller's RNG state is left alone
            torch.manual_seed(seed * 1_000_003 + start)
            generated = hf.generate(
                ids.to(model.device),
                attention_mask=mask.to(model.device),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=MAX_NEW_TOKENS,
                pad_token_id=pad,
            )
        for prompt, row in zip(chunk, generated[:, width:], strict=True):
            out.append(prompt + tokenizer.decode(row, skip_special_tokens=True))
    return out


def default_corpus(
    model: Any, *, n_texts: int = 100, seed: int = 0, batch_size: int = 100, cache: bool = True
) -> Corpus:
    """The model's own seeded multilingual samples, disjoint from the evaluation data.

    Texts sharing an 8-gram with a built-in evaluation text are dropped (the corpus may then
    hold fewer than ``n_texts``; the count is recorded). Cached per model, size and seed.

    Args:
        model: The HubModel whose samples make the corpus.
        n_texts: Texts to sample, split equally over :data:`LANGUAGES`.
        seed: Sampling seed.
        batch_size: Prompts sampled at once.
        cache: Read and write the cache (``cache_root()/corpora/``).

    Returns:
        The corpus.

    Raises:
        ValueError: ``n_texts`` or ``batch_size`` not a positive int.
    """
    for arg, value in (("n_texts", n_texts), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg}={value!r}: pass a positive int.")
    path = corpus_cache_path(model, n_texts=n_texts, seed=seed)
    if cache and path.is_file():
        try:
            return Corpus.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file is sampled again and replaced
    plan = _plan(n_texts)
    samples = _sample(model, [p for _, p in plan], seed, batch_size)
    banned = evaluation_ngrams()
    kept, languages, dropped = [], dict.fromkeys(LANGUAGES, 0), 0
    for (language, _), text in zip(plan, samples, strict=True):
        if ngrams(text) & banned or not text.strip():
            dropped += 1
            continue
        kept.append(text)
        languages[language] += 1
    how = {
        "recipe": f"model samples v{RECIPE_VERSION}: temperature 1, top_k=0, top_p=1",
        "model": str(getattr(getattr(model, "provenance", None), "name", "object")),
        "seed": seed,
        "n_requested": n_texts,
        "max_new_tokens": MAX_NEW_TOKENS,
        "prompts": {k: list(v) for k, v in PROMPTS.items()},
        "language_mix": "equal shares of " + ", ".join(LANGUAGES),
        "disjointness": f"dropped samples sharing a {NGRAM}-gram (words; CJK characters) with "
        "any built-in data set (default options)",
        "n_dropped_overlap": dropped,
    }
    corpus = Corpus.from_texts(
        kept, name=f"model-samples-v{RECIPE_VERSION}", languages=languages, how=how
    )
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, corpus.to_json())
    return corpus
