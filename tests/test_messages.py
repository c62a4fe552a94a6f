"""Wording rules for everything FaceChain says to people (FaceChainError messages and generation comments), checked
over the source: sentences (a capital or a name first, a full stop last), no dotted field paths (programs get those
in the error's context), and no library names except where a package is the thing to install."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from facechain_ext.errors import FaceChainError
from facechain_ext.webui.tab_common import error_html

PACKAGE = Path(__file__).resolve().parents[1] / "facechain_ext"
PLACEHOLDER = "{X}"
# names of things people choose or see as files: the face backends, model families, file formats
ALLOWED_DOTTED = {"SD1.x", "SD2.x"}
FILE_TYPES = {"jpg", "jpeg", "png", "webp", "json", "onnx", "safetensors", "pt", "pth", "ckpt", "zip", "txt", "yaml", "py"}
LIBRARIES = re.compile(r"\b(PIL|Pillow|pydantic|numpy|torch|cv2|OpenCV|onnxruntime|diffusers|peft|gradio|fastapi|"
                       r"ValidationError|Traceback|NoneType)\b")
DOTTED = re.compile(r"(?<![\w{/.-])([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")


def _text(node: ast.AST) -> str | None:
    """A message argument as text, every formatted value as {X}; None when it is not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None or right is None else left + right
    return None


def user_messages() -> list[tuple[str, str]]:
    """(where, text) of every FaceChainError message and every comment FaceChain adds to a generation."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "FaceChainError" and len(node.args) >= 2:
                argument = node.args[1]
            elif name in ("comment", "_comment") and node.args:
                argument = node.args[-1]
            else:
                continue
            text = _text(argument)
            if text is not None:
                found.append((f"{path.relative_to(PACKAGE)}:{node.lineno}", text))
    return found


def problems(text: str) -> list[str]:
    found = []
    if not (re.search(r"[.?!][)\"']?$", text.rstrip()) or text.endswith(PLACEHOLDER)):  # {X}: another message
        found.append("does not end like a sentence")
    if not (text[:1].isupper() or text.startswith(PLACEHOLDER) or text[:1] in "'\"<-"):
        found.append("does not start with a capital or a name")
    for left, right in DOTTED.findall(text):
        if f"{left}.{right}" not in ALLOWED_DOTTED and right.lower() not in FILE_TYPES and left not in ("e", "i"):
            found.append(f"dotted field path {left}.{right}")
    library = LIBRARIES.search(text)
    if library and not re.search(r"install|package", text, re.IGNORECASE):
        found.append(f"library name {library.group(0)}")
    return found


def test_the_scan_finds_the_messages():
    messages = user_messages()
    assert len(messages) > 150  # every module's errors, not a handful
    assert any(where.startswith("prep/pipeline.py") for where, _ in messages)


def test_every_message_is_a_plain_sentence():
    bad = [f"{where}: {', '.join(found)}: {text!r}" for where, text in user_messages() if (found := problems(text))]
    assert bad == []


@pytest.mark.parametrize("text", [
    "FaceChain controls.identity: choose an identity.",   # a dotted field path
    "photo.jpg: not an image file PIL can read.",           # a library name
    "top_k: must be at least 1",                            # no capital, no full stop
])
def test_the_rules_catch_what_users_complained_about(text):
    assert problems(text)


def test_the_tab_shows_the_message_not_the_code():
    shown = error_html(FaceChainError("identity_not_found", "No identity named 'x'."))
    assert "No identity named" in shown and ">identity_not_found" not in shown and "<b>" not in shown
    assert "data-code='identity_not_found'" in shown  # for tests and tools, invisible on the page
    cancelled = error_html(FaceChainError("cancelled", "Training was cancelled."))
    assert "facechain-error" not in cancelled  # a cancel is the user's choice, not an error
