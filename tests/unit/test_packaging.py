"""Every package folder of the source tree is installed (pyproject's explicit package list)."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    dirs = {name: ROOT / path for name, path in setuptools["package-dir"].items()}
    found = set()
    for name, folder in dirs.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            found.add(".".join((name, *relative)))
    # hublens/hooks and hublens/analyses do not exist on disk: the mapping supplies them.
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {found - listed}"
    assert listed - found == set(), f"listed but not on disk: {listed - found}"
