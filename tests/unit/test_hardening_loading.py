"""Loading reads safetensors only, never unpickles, cleans stale temporaries, checks writability.

A "malicious" pickle here is one whose unpickling creates a marker file: if the marker appears,
something unpickled it.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from pathlib import Path

import pytest
import torch

import hublens
import hublens.cache as cache
from hublens.bundled import BUNDLED
from hublens.cache import read_manifest, remove_stale_temporaries, write_entry
from hublens.errors import CacheError, WeightsNotFoundError
from tests.conftest import build_tiny


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_Touch(marker)))


def _fake_bundled_entry(root: Path, name: str = "smollm2-135m") -> tuple[Path, object]:
    """A cache entry under ``root`` with a tiny Llama in place of the bundled model."""
    hf, reference, tok = build_tiny("llama", seed=5)
    entry = root / f"{name}-{BUNDLED[name].package_version()}-fp32"

    def writer(folder: Path) -> None:
        hf.save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)

    write_entry(entry, writer, meta={"test": True})
    return entry, reference


def test_hub_name_with_pickle_only_is_refused_unopened(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    hub = tmp_path / "hub"
    repo = hub / "models--EleutherAI--pythia-14m"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / "config.json").write_text('{"model_type": "gpt_neox"}')
    marker = tmp_path / "unpickled"
    _malicious_pickle(snapshot / "pytorch_model.bin", marker)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    with pytest.raises(WeightsNotFoundError, match="pytorch_model.bin.*never unpickles"):
        hublens.load_model("EleutherAI/pythia-14m")
    assert not marker.exists()


def test_folder_with_pickle_only_is_refused_unopened(tmp_path):
    hf, _, tok = build_tiny("llama")
    hf.config.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    marker = tmp_path / "unpickled"
    _malicious_pickle(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(WeightsNotFoundError, match="pytorch_model.bin.*never unpickles"):
        hublens.load_model(tmp_path)
    assert not marker.exists()


def test_cache_entry_with_safetensors_swapped_for_bin_is_not_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    entry, reference = _fake_bundled_entry(tmp_path)
    model = hublens.load_model("smollm2-135m")  # the fake entry loads and matches its weights
    batch = model.tokenize("The cat sleeps.")
    with torch.no_grad():
        assert torch.allclose(model(batch.ids), reference(input_ids=batch.ids).logits, atol=1e-4)
    (entry / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    _malicious_pickle(entry / "pytorch_model.bin", marker)
    with pytest.raises(CacheError, match="pickle"):
        hublens.load_model("smollm2-135m")
    assert not marker.exists()


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    _fake_bundled_entry(tmp_path)
    dead = tmp_path / ".smollm2-135m-x-fp32.tmp-999999999-0badc0de"
    live = tmp_path / f".smollm2-135m-x-fp32.tmp-{os.getppid()}-0123abcd"
    old = tmp_path / f".smollm2-135m-x-fp32.tmp-{os.getppid()}-4567abcd"
    for folder in (dead, live, old):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    hublens.load_model("smollm2-135m")
    assert not dead.exists() and not old.exists()
    assert live.exists()
    assert remove_stale_temporaries(tmp_path) == []


def test_unwritable_cache_is_reported_before_dequantising(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "cache"))
    with caplog.at_level(logging.WARNING), pytest.raises(CacheError) as info:
        hublens.load_model("smollm2-135m")
    assert "HUBLENS_CACHE_DIR" in str(info.value) and "not writable" in str(info.value)
    assert not any("dequantising" in r.getMessage() for r in caplog.records)


def test_hash_is_skipped_when_stamps_are_unchanged(tmp_path, monkeypatch):
    entry = tmp_path / "entry"
    write_entry(entry, lambda d: (d / "w.safetensors").write_bytes(b"x" * 1000), meta={})
    hashed: list[Path] = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: hashed.append(p) or real(p))
    read_manifest(entry)
    read_manifest(entry)
    assert hashed == []  # verified when written; unchanged since
    read_manifest(entry, full=True)
    assert len(hashed) == 1


def test_in_place_corruption_with_mtime_restored_is_still_caught(tmp_path):
    entry = tmp_path / "entry"
    write_entry(entry, lambda d: (d / "w.safetensors").write_bytes(b"x" * 1000), meta={})
    read_manifest(entry)
    path = entry / "w.safetensors"
    before = path.stat()
    with open(path, "r+b") as handle:  # same size, one byte changed
        handle.seek(10)
        handle.write(b"y")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide the write from mtime
    with pytest.raises(CacheError, match="corrupt"):
        read_manifest(entry)


def test_swapped_file_of_same_size_is_caught(tmp_path):
    entry = tmp_path / "entry"
    write_entry(entry, lambda d: (d / "w.safetensors").write_bytes(b"x" * 1000), meta={})
    path = entry / "w.safetensors"
    before = path.stat()
    swap = tmp_path / "swap"
    swap.write_bytes(b"z" * 1000)
    os.utime(swap, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(swap, path)  # a different inode, same size and mtime
    with pytest.raises(CacheError, match="corrupt"):
        read_manifest(entry)
