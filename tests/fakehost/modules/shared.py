"""Stand-in for modules/shared.py: `opts`, `cmd_opts`, `state`, `sd_model` and the OptionInfo helpers."""

from __future__ import annotations

from modules import options, shared_cmd_options, shared_state
from modules.options import OptionHTML, OptionInfo, options_section  # noqa: F401 - re-exported like the host

cmd_opts = shared_cmd_options.cmd_opts
parallel_processing_allowed = True
restricted_opts: set[str] = set()

opts = options.Options(options.builtin_options(), restricted_opts)
state = shared_state.State()
sd_model = None  # the loaded checkpoint; tests that need one assign it
face_restorers: list = []  # the host fills it at start-up (GFPGAN, CodeFormer); empty here until a test adds one
demo = None
device = None
