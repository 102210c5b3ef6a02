"""Running benchmark code in a fresh interpreter, optionally importing hublens from a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_python(code: str, *, checkout: Path | str | None = None, **env: str) -> Any:
    """Run ``code`` in a new interpreter and return its last stdout line, parsed as JSON.

    Args:
        code: The program; it prints its result as JSON on its last line.
        checkout: A source tree whose ``hublens`` the child imports (``PYTHONPATH`` and working
            directory) instead of the installed one; None: the installed one.
        **env: Environment variables added for the child (``HF_HUB_OFFLINE=1`` always is).

    Raises:
        ValueError: ``checkout`` holds no hublens package (checked before the child starts).
        subprocess.CalledProcessError: The child failed (its stderr is in the exception).
    """
    if checkout is not None:
        check_checkout(checkout)
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    if checkout is not None:
        child_env["PYTHONPATH"] = str(checkout)
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=child_env,
        cwd=checkout,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_checkout(checkout: Path | str) -> None:
    """Refuse a folder that holds no hublens source tree, naming it and the fix."""
    if not (Path(checkout) / "hublens" / "__init__.py").is_file():
        raise ValueError(
            f"checkout={str(checkout)!r} has no hublens/__init__.py: pass the root of a hublens "
            "source tree (e.g. `git archive <commit> | tar -x -C DIR`)."
        )


def load_average() -> str:
    """The 1-minute load average, as the kernel prints it ("n/a" where there is none)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
