"""Stand-in for modules/paths.py (+ paths_internal): where the host keeps data and models.

The real host derives these from --data-dir; here FAKEHOST_DATA_DIR or a fresh temp folder.
Tests move them per test with `fakehost.reset_host(tmp_path)`.
"""

from __future__ import annotations

import os
import tempfile

script_path = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
data_path = os.environ.get("FAKEHOST_DATA_DIR") or tempfile.mkdtemp(prefix="fakehost-")
models_path = os.path.join(data_path, "models")
extensions_dir = os.path.join(data_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")
