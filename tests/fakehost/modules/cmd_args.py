"""Stand-in for modules/cmd_args.py: the host's own command-line flags that extensions read (A1111 1.10 names)."""

from __future__ import annotations

import argparse
import os

from modules import paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=str, default=paths.data_path)
    parser.add_argument("--models-dir", type=str, default=None)
    parser.add_argument("--ckpt-dir", type=str, default=None)
    parser.add_argument("--api", action="store_true")
    parser.add_argument("--api-auth", type=str, default=None)
    parser.add_argument("--api-log", action="store_true")
    parser.add_argument("--nowebui", action="store_true")
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--freeze-settings", action="store_true")
    parser.add_argument("--hide-ui-dir-config", action="store_true")
    parser.add_argument("--no-half", action="store_true")
    parser.add_argument("--no-half-vae", action="store_true")
    parser.add_argument("--precision", type=str, choices=["full", "half", "autocast"], default="autocast")
    parser.add_argument("--upcast-sampling", action="store_true")
    parser.add_argument("--lowvram", action="store_true")
    parser.add_argument("--medvram", action="store_true")
    # extensions-builtin/Lora/preload.py adds this one
    parser.add_argument("--lora-dir", type=str, default=os.path.join(paths.models_path, "Lora"))
    return parser
