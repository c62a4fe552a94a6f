"""Stand-in for the host's launch.py as seen by an extension's install.py (`import launch`).

`run_pip` does not run pip: it records the call in `pip_calls`, so install tests never touch the environment.
"""

from __future__ import annotations

import importlib.util
import sys
from types import SimpleNamespace

args = SimpleNamespace(skip_install="--skip-install" in sys.argv)
python = sys.executable
pip_calls: list[tuple[str, str]] = []


def is_installed(package: str) -> bool:
    # the host ignores version specifiers, exactly the weakness install.py works around
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:
        return False


def run_pip(command: str, desc: str | None = None, live: bool = False) -> str:
    pip_calls.append((command, desc or ""))
    return ""
