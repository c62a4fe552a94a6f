"""Stand-in for modules/shared_cmd_options.py: `cmd_opts`, parsed once with every extension's preload flags.

Extensions found: the repository this fake host lives in (FAKEHOST_EXTENSIONS, os.pathsep-separated, overrides).
`fakehost.reset_host()` re-parses into the same namespace object, as modules keep references to it.
"""

from __future__ import annotations

import argparse
import os

from modules import cmd_args, paths, script_loading


def extension_dirs() -> list[str]:
    configured = os.environ.get("FAKEHOST_EXTENSIONS")
    if configured is not None:
        return [d for d in configured.split(os.pathsep) if d]
    return [paths.script_path]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = cmd_args.build_parser()
    script_loading.preload_extensions(extension_dirs(), parser)
    return parser.parse_args(argv)


cmd_opts = parse([])
