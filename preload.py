"""Command-line flags FaceChain adds to the webui (the host calls `preload(parser)` before parsing arguments).

Read later as `shared.cmd_opts.facechain_models_dir` / `shared.cmd_opts.facechain_offline`.
"""

from __future__ import annotations

import argparse
import os


def preload(parser: argparse.ArgumentParser) -> None:
    from modules import paths  # host module; preload.py runs inside the host only

    parser.add_argument(
        "--facechain-models-dir",
        type=str,
        default=os.path.join(paths.models_path, "facechain"),
        help="FaceChain: folder for identities, face models and adapters (default: <models>/facechain).",
    )
    parser.add_argument(
        "--facechain-offline",
        action="store_true",
        default=False,
        help="FaceChain: never download anything, whatever the settings say.",
    )
