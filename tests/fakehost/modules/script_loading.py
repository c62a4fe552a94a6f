"""Stand-in for modules/script_loading.py: load a file as a module without registering it, run extensions' preload()."""

from __future__ import annotations

import argparse
import importlib.util
import os
from types import ModuleType

from modules import errors


def load_module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def preload_extensions(extension_dirs: list[str], parser: argparse.ArgumentParser) -> None:
    """Like the host: each extension's preload(parser) runs before parsing; failures are reported, not raised."""
    for dirname in extension_dirs:
        preload_script = os.path.join(dirname, "preload.py")
        if not os.path.isfile(preload_script):
            continue
        try:
            module = load_module(preload_script)
            if hasattr(module, "preload"):
                module.preload(parser)
        except Exception:  # noqa: BLE001 - the host reports and goes on
            errors.report(f"Error running preload() for {preload_script}", exc_info=True)
