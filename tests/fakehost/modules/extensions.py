"""Stand-in for modules/extensions.py (A1111 1.10): the installed extensions and `active()`.

`Extension(name, path, enabled=True, is_builtin=False)`; `extensions` is filled by the host's `list_extensions()` at
start-up; here tests append to it (e.g. the ControlNet stand-in in tests/fakehost/extensions) and `reset_host` clears it.
"""

from __future__ import annotations

import os


class Extension:
    def __init__(self, name, path, enabled=True, is_builtin=False, metadata=None):
        self.name = name
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin
        self.metadata = metadata
        self.canonical_name = name.lower()

    def list_files(self, subdir, extension):
        dirpath = os.path.join(self.path, subdir)
        if not os.path.isdir(dirpath):
            return []
        return [os.path.join(dirpath, name) for name in sorted(os.listdir(dirpath)) if name.endswith(extension)]


extensions: list[Extension] = []


def active():
    return [x for x in extensions if x.enabled]
