"""The extension uses nothing newer than the host's Python 3.10 and torch 2.1.2 (A1111 1.10.1's defaults).

Two guards: vermin checks every Python API against 3.10, and a scan of the torch names the extension touches checks them
against a maintained list of names added after torch 2.1 and, when the suite runs on the host's torch (tests/constraints.txt
pins 2.1.2), resolves every one of them on the installed torch. Guarded look-ups (`getattr(torch.amp, "GradScaler", None)`)
are the sanctioned way to use a newer API when present; the scan only sees plain attribute chains and imports.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["facechain_ext", "scripts", "install.py", "preload.py"]
HOST_TORCH = "2.1.2"

# Names that torch 2.1.2 lacks (added in the version given), kept by hand from the torch release notes.
NEWER_THAN_HOST = {
    "torch.amp.GradScaler": "2.3", "torch.amp.custom_fwd": "2.4", "torch.amp.custom_bwd": "2.4",
    "torch.nn.attention": "2.2", "torch.library.custom_op": "2.4", "torch.library.register_fake": "2.4",
    "torch.library.triton_op": "2.6", "torch.serialization.add_safe_globals": "2.4",
    "torch.serialization.safe_globals": "2.5", "torch.get_default_device": "2.3", "torch.accelerator": "2.6",
    "torch.nn.RMSNorm": "2.4", "torch.nn.functional.rms_norm": "2.4", "torch.uint16": "2.3", "torch.uint32": "2.3",
    "torch.uint64": "2.3", "torch.compiler.is_compiling": "2.3", "torch.compiler.is_dynamo_compiling": "2.3",
    "torch.compiler.set_stance": "2.6", "torch.nn.Module.set_submodule": "2.3", "torch.float8_e4m3fnuz": "2.2",
    "torch.float8_e5m2fnuz": "2.2", "torch.nn.functional.silu_": "2.2", "torch.utils.swap_tensors": "2.2",
    "torch.export.export_for_training": "2.5", "torch.cuda.memory.mem_get_info": "2.2",
}


def _python_files() -> list[Path]:
    files: list[Path] = []
    for name in SHIPPED:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def _dotted(node: ast.AST) -> str | None:
    """'a.b.c' for an attribute chain on a plain name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def torch_names(source: str) -> set[str]:
    """Every torch name a module references: imports (aliases expanded) and attribute chains on those names."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "torch":
                    names.add(alias.name)
                    aliases[alias.asname or "torch"] = alias.name if alias.asname else "torch"
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
            for alias in node.names:
                names.add(f"{node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = _dotted(node)
            if chain and chain.split(".")[0] in aliases:
                head, _, rest = chain.partition(".")
                names.add(f"{aliases[head]}.{rest}")
    return names


def _resolves(name: str) -> bool:
    """Whether `name` (a module, or a module followed by attributes) exists on the installed torch."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _newer(names: set[str]) -> list[str]:
    return sorted(f"{n} (torch {v})" for n in names for banned, v in NEWER_THAN_HOST.items()
                  if n == banned or n.startswith(banned + "."))


def _torch_load_without_weights_only(source: str) -> list[int]:
    """Lines that call torch.load without weights_only=True (2.1.2 defaults to unpickling arbitrary objects)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _dotted(node.func) == "torch.load":
            ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                     for k in node.keywords)
            if not ok:
                lines.append(node.lineno)
    return lines


def test_no_torch_api_newer_than_the_host():
    found: dict[str, list[str]] = {}
    unsafe_loads: dict[str, list[int]] = {}
    for path in _python_files():
        source = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(ROOT))
        if bad := _newer(torch_names(source)):
            found[rel] = bad
        if lines := _torch_load_without_weights_only(source):
            unsafe_loads[rel] = lines
    assert not found, f"torch APIs the host's torch {HOST_TORCH} lacks: {found}"
    assert not unsafe_loads, f"torch.load without weights_only=True: {unsafe_loads}"


@pytest.mark.skipif(not torch.__version__.startswith(HOST_TORCH), reason=f"needs the host's torch {HOST_TORCH}")
def test_every_torch_name_exists_on_the_hosts_torch():
    missing = {str(p.relative_to(ROOT)): sorted(n for n in torch_names(p.read_text(encoding="utf-8")) if not _resolves(n))
               for p in _python_files()}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"names absent from torch {torch.__version__}: {missing}"


def test_the_torch_scan_catches_newer_names():
    source = ("import torch\nfrom torch.nn.attention import sdpa_kernel\nimport torch.nn.functional as F\n"
              "s = torch.amp.GradScaler('cuda')\ny = F.rms_norm(x, (4,))\nok = getattr(torch.amp, 'GradScaler', None)\n"
              "w = torch.load(path)\nv = torch.load(path, weights_only=True)\n")
    names = torch_names(source)
    assert _newer(names) == ["torch.amp.GradScaler (torch 2.3)", "torch.nn.attention.sdpa_kernel (torch 2.2)",
                             "torch.nn.functional.rms_norm (torch 2.4)"]
    assert _torch_load_without_weights_only(source) == [7]
    if torch.__version__.startswith(HOST_TORCH):
        assert not _resolves("torch.amp.GradScaler") and _resolves("torch.cuda.amp.GradScaler")


def _vermin(paths: list[str]) -> subprocess.CompletedProcess:
    # vermin has no __main__; its console entry point is vermin.main.main().
    cmd = [sys.executable, "-c", "import sys; from vermin.main import main; sys.exit(main())",
           "--target=3.10-", "--no-tips", "--violations", "--eval-annotations", *paths]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_no_python_api_newer_than_3_10():
    result = _vermin(SHIPPED)
    assert result.returncode == 0, f"Python ≥3.11 APIs (the host runs 3.10):\n{result.stdout}{result.stderr}"


def test_the_python_check_catches_3_11_apis(tmp_path):
    bad = tmp_path / "newer.py"
    bad.write_text("import tomllib\nfrom typing import Self\n", encoding="utf-8")
    result = _vermin([str(bad)])
    assert result.returncode != 0 and "tomllib" in result.stdout and "typing.Self" in result.stdout
