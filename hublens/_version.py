"""The hublens version string, read from the installed distribution when there is one."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hublens")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
