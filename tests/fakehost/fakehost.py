"""Test helpers around the fake host (not part of the host API): a fresh host per test, like a restart.

`reset_host(tmp, argv)` points `modules.paths` at `tmp`, re-parses `cmd_opts` in place (with extensions' preload
flags), rebuilds `opts`/`state`, clears callbacks (as `load_scripts()` does) and forgets reported errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from modules import paths as _paths

ORIGINAL_DATA_DIR = _paths.data_path  # where the fake host started; `fake_host` returns there after each test


def reset_host(data_dir: os.PathLike | None = None, argv: Sequence[str] = ()) -> None:
    from modules import errors, options, paths, progress, script_callbacks, shared, shared_cmd_options

    if data_dir is not None:
        paths.data_path = str(data_dir)
        paths.models_path = str(Path(data_dir) / "models")
    fresh = shared_cmd_options.parse(list(argv))
    namespace = shared_cmd_options.cmd_opts
    vars(namespace).clear()
    vars(namespace).update(vars(fresh))
    # in place: host modules bind `opts`/`state` once (`from modules.shared import opts`). Setting an option that is
    # not registered yet makes a plain attribute (as Options.__setattr__ does in the host): a fresh host has none.
    for name in [key for key in vars(shared.opts) if key not in options.options_builtin_fields]:
        delattr(shared.opts, name)
    shared.opts.__init__(options.builtin_options(), shared.restricted_opts)
    vars(shared.state).clear()
    shared.state.__init__()
    shared.sd_model = None
    shared.face_restorers.clear()
    script_callbacks.clear_callbacks()
    errors.exception_records.clear()
    progress.current_task = None
    progress.pending_tasks.clear()
    progress.finished_tasks.clear()


def reported_errors() -> list[dict]:
    from modules import errors

    return list(errors.exception_records)
