"""The weight cache: atomic writes, verification of sizes and hashes."""

from __future__ import annotations

import hashlib
import json

import pytest

from hublens.cache import MANIFEST, cache_root, read_manifest, write_entry
from hublens.errors import CacheError


def _writer(folder):
    (folder / "model.safetensors").write_bytes(b"\x00\x01weights" * 1000)
    (folder / "config.json").write_text('{"a": 1}')


def test_roundtrip_records_real_hashes(tmp_path):
    entry = tmp_path / "m"
    write_entry(entry, _writer, meta={"source": "test"})
    manifest = read_manifest(entry)
    data = (entry / "model.safetensors").read_bytes()
    assert manifest["files"]["model.safetensors"] == {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert manifest["meta"] == {"source": "test"}
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left


def test_truncated_file_is_detected(tmp_path):
    entry = tmp_path / "m"
    write_entry(entry, _writer, meta={})
    path = entry / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CacheError, match="truncated") as info:
        read_manifest(entry)
    assert str(entry) in str(info.value) and "rebuild_cache=True" in str(info.value)


def test_corrupt_file_of_same_size_is_detected(tmp_path):
    entry = tmp_path / "m"
    write_entry(entry, _writer, meta={})
    path = entry / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="corrupt"):
        read_manifest(entry)


def test_missing_manifest_or_file(tmp_path):
    entry = tmp_path / "m"
    write_entry(entry, _writer, meta={})
    (entry / "config.json").unlink()
    with pytest.raises(CacheError, match="missing"):
        read_manifest(entry)
    (entry / MANIFEST).write_text("{not json")
    with pytest.raises(CacheError, match="no readable"):
        read_manifest(entry)


def test_writer_killed_half_way_leaves_no_entry(tmp_path):
    entry = tmp_path / "m"

    def dies(folder):
        (folder / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_entry(entry, dies, meta={})
    assert not entry.exists()
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_old_entry(tmp_path):
    entry = tmp_path / "m"
    write_entry(entry, _writer, meta={"v": 1})
    write_entry(entry, _writer, meta={"v": 2})
    assert json.loads((entry / MANIFEST).read_text())["meta"] == {"v": 2}


def test_cache_root_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBLENS_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("HUBLENS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "hublens"
