"""The dependency rule and the cheap-import rule (DESIGN.md, TEAM_BRIEF):

- only `facechain_ext/webui/` and `scripts/` import the host (`modules`), `gradio` or `launch`; the host-run entry
  files `install.py` (imports `launch`) and `preload.py` (imports `modules.paths`) are host glue by nature;
- importing the packages the host loads at start-up pulls in no torch, OpenCV, onnxruntime or dlib.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST_ONLY = {"modules", "gradio", "launch"}
# tools/ui_preview.py is a dev tool that renders the UI with gradio on the stand-in host (tests/fakehost): host glue by nature
ALLOWED = [REPO / "facechain_ext" / "webui", REPO / "scripts", REPO / "tools" / "ui_preview.py"]
HOST_ENTRY_FILES = {REPO / "install.py", REPO / "preload.py"}
CHECKED_DIRS = [REPO / "facechain_ext", REPO / "benchmarks", REPO / "tools"]


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every import in the file, including imports inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                roots.add(node.args[0].value.split(".")[0])
    return roots


def checked_files() -> list[Path]:
    files = [p for d in CHECKED_DIRS if d.is_dir() for p in d.rglob("*.py")]
    files += [p for p in REPO.glob("*.py") if p not in HOST_ENTRY_FILES]
    return [p for p in files if not any(p.is_relative_to(a) for a in ALLOWED)]


def test_the_scan_sees_what_it_should():
    assert imported_roots(REPO / "facechain_ext" / "webui" / "__init__.py") >= {"modules"}
    assert len(checked_files()) >= 10  # the core package is there and scanned
    assert all(not p.is_relative_to(REPO / "facechain_ext" / "webui") for p in checked_files())


def test_only_webui_and_scripts_import_the_host_gradio_or_launch():
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & HOST_ONLY)
        for path in checked_files()
        if imported_roots(path) & HOST_ONLY
    }
    assert offenders == {}, f"host-only imports outside facechain_ext/webui and scripts: {offenders}"


def test_host_entry_files_import_only_what_they_must():
    assert imported_roots(REPO / "install.py") & HOST_ONLY == {"launch"}
    assert imported_roots(REPO / "preload.py") & HOST_ONLY == {"modules"}


HEAVY = ["torch", "cv2", "onnxruntime", "dlib", "insightface", "diffusers", "peft", "transformers", "gradio", "modules"]


def test_importing_what_the_host_loads_at_start_up_is_cheap():
    code = (
        "import sys, json\n"
        "import facechain_ext, facechain_ext.faces, facechain_ext.webui, facechain_ext.context, facechain_ext.models\n"
        "import facechain_ext.schemas, facechain_ext.config, facechain_ext.errors\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
