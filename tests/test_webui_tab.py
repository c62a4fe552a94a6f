"""The FaceChain tab under gradio 3.41.2: it builds, survives broken views, explains missing dependencies, and the
Identities handlers work on real uploads (called directly, the way gradio calls them)."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio.context import Context
from gradio_helpers import load_outputs

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.webui import tab
from facechain_ext.webui.tab_identities import IdentityHandlers, uploaded_photos


@pytest.fixture
def ctx(tmp_path) -> FaceChainContext:
    return FaceChainContext(Settings(models_dir=tmp_path / "facechain", face_backend="dlib"))


@pytest.fixture(scope="module")
def uploads(faces_table, edge_table, tmp_path_factory) -> dict[str, list]:
    """Files as gradio 3 hands them over: temp copies with `.name` and the user's `.orig_name`."""
    folder = tmp_path_factory.mktemp("uploads")
    by_identity: dict[str, list[str]] = {}
    for row in faces_table:
        by_identity.setdefault(row["identity"], []).append(row["file"])
    edge = {Path(row["path"]).name: row["file"] for row in edge_table}

    def upload(path: str) -> SimpleNamespace:
        copy = folder / f"tmp{len(list(folder.iterdir()))}{Path(path).suffix}"
        shutil.copy(path, copy)
        return SimpleNamespace(name=str(copy), orig_name=Path(path).name)

    return {
        "obama": [upload(p) for p in by_identity["obama"][:3]],
        "bad": [upload(edge["noface_blank_gray.jpg"]), upload(edge["corrupt_zero_bytes.jpg"])],
    }


def labels(block: gr.Blocks, kind: type) -> list[str]:
    return [b.label for b in block.blocks.values() if isinstance(b, kind)]


def elem_ids(block: gr.Blocks) -> set[str]:
    return {b.elem_id for b in block.blocks.values() if getattr(b, "elem_id", None)}


def test_tab_builds_with_its_views(ctx):
    block = tab.build_tab(ctx)
    assert isinstance(block, gr.Blocks) and Context.block is None and Context.root_block is None
    assert labels(block, gr.Tab) == ["Identities", "Train", "Generate", "Templates"]
    assert {"facechain_identity_prepare", "facechain_identity_photos", "facechain_identity_delete"} <= elem_ids(block)
    assert {"facechain_tpl_image", "facechain_tpl_run", "facechain_tpl_gallery", "facechain_tpl_face_0"} <= elem_ids(block)
    status = [b.value for b in block.blocks.values() if getattr(b, "elem_id", None) == "facechain_models_status"][0]
    summary, details = status.split("<details")
    # one line each: what is present, what a feature needs; long paths and licences only behind the toggle
    assert "<b>dlib</b></td><td>face analysis</td><td>ready" in summary and "<b>insightface</b>" in summary
    assert "<b>buffalo_l</b></td><td>the insightface face backend" in summary and "missing (Download below)" in summary
    assert "/" not in summary.replace("</", "") and "Put det_10g.onnx" in details and "non-commercial" in details
    # downloads are off by default: the button is disabled and says why, in a neutral note (not a red box)
    buttons = {b.elem_id: b for b in block.blocks.values() if isinstance(b, gr.Button)}
    assert buttons["facechain_download_buffalo_l"].interactive is False
    note = [b.value for b in block.blocks.values() if getattr(b, "elem_id", None) == "facechain_download_buffalo_l_status"][0]
    assert "Downloads are off" in note and "Settings → FaceChain" in note and "facechain-error" not in note
    assert "facechain_download_facechain_fact" not in buttons  # manual install only: no button at all
    fns = block.fns.values() if isinstance(block.fns, dict) else block.fns  # gradio 4: {id: BlockFunction}
    handler_names = {getattr(fn.fn, "__name__", "") for fn in fns}
    assert {"prepare", "refresh", "delete", "show", "show_faces", "refresh_template_identities"} <= handler_names


def test_download_buttons_follow_the_setting_on_page_load(ctx):
    from facechain_ext.webui.tab_models import download_state

    button, note = download_state(ctx.settings, "buffalo_l")
    assert button["interactive"] is False and "Downloads are off" in note
    ctx.settings = Settings(models_dir=ctx.settings.models_dir, face_backend="dlib", allow_downloads=True)
    button, note = download_state(ctx.settings, "buffalo_l")
    assert button["interactive"] is True and "MB" in note and "sha256" in note
    ctx.settings = Settings(models_dir=ctx.settings.models_dir, allow_downloads=True, offline=True)
    button, note = download_state(ctx.settings, "buffalo_l")
    assert button["interactive"] is False and "offline" in note
    block = tab.build_tab(ctx)
    models = [b for b in block.blocks.values() if getattr(b, "elem_id", None) == "facechain_models_status"][0]
    assert any(models._id in outputs for outputs in load_outputs(block))  # read again on every page load


def test_a_broken_or_missing_view_becomes_an_explanation(ctx, monkeypatch):
    broken = types.ModuleType("facechain_ext.webui.tab_generate")

    def build(_ctx):
        with gr.Blocks():
            gr.Button("half built")
            raise RuntimeError("view bug")

    broken.build = build
    monkeypatch.setitem(sys.modules, "facechain_ext.webui.tab_generate", broken)
    monkeypatch.setattr(tab, "VIEWS", tab.VIEWS + (("Extra", "tab_not_written_yet", "facechain_extra"),))
    block = tab.build_tab(ctx)
    assert Context.block is None and Context.root_block is None  # the global gradio context was restored
    notes = [b.value for b in block.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("could not be built (RuntimeError: view bug)" in n for n in notes)
    assert any("not included in this version" in n for n in notes)
    assert "facechain_identity_prepare" in elem_ids(block)  # the other views are intact
    assert "half built" not in [getattr(b, "value", None) for b in block.blocks.values()]


def test_missing_dependencies_are_explained_with_the_fix(ctx, monkeypatch):
    assert tab.dependency_problems(ctx.settings) == []
    real = tab._has
    monkeypatch.setattr(tab, "_has", lambda module: module not in ("peft", "dlib") and real(module))
    from facechain_ext import faces

    monkeypatch.setattr(faces, "_has_module", lambda module: module not in ("dlib", "insightface"))
    problems = tab.dependency_problems(ctx.settings)
    assert any("`peft<=0.13.2`" in p and "pip install peft<=0.13.2" in p for p in problems)
    assert any(p.startswith("**No face backend is available**") and "dlib-bin" in p for p in problems)
    block = tab.build_tab(ctx)
    status = [b.value for b in block.blocks.values() if getattr(b, "elem_id", None) == "facechain_dependency_status"]
    assert len(status) == 1 and "peft" in status[0]


def test_uploaded_photos_accepts_gradio3_objects_and_gradio4_paths():
    assert uploaded_photos([SimpleNamespace(name="/tmp/abc.jpg", orig_name="me.jpg"), "/tmp/x/you.png", None]) == [
        ("me.jpg", "/tmp/abc.jpg"), ("you.png", "/tmp/x/you.png")]
    assert uploaded_photos(None) == []


def test_prepare_saves_an_identity_and_shows_crops_and_reasons(ctx, uploads):
    handlers = IdentityHandlers(ctx)
    message, gallery, rejected, choices, rows = handlers.prepare(uploads["obama"] + uploads["bad"][1:], "obama", "", False)
    assert "Identity <b>obama</b> saved" in message and "facechain-error" not in message
    identity = ctx.identities.get("obama")
    assert len(gallery) == identity.photo_count >= 2
    assert all(image.size == (512, 512) for image, _ in gallery)
    # two columns (photo, reason): no code column, and the reason does not repeat the photo's name
    assert rejected == [["corrupt_zero_bytes.jpg", "The file is empty."]]
    assert choices["choices"] == ["obama"] and choices["value"] == "obama"
    assert rows[0][:2] == ["obama", identity.photo_count]

    best, details = handlers.show("obama")
    assert best is not None and Path(best).is_file() and "obama" in details

    message, *_ = handlers.prepare(uploads["obama"][:1], "obama", "", False)
    assert "data-code='name_taken'" in message and "name_taken<" not in message and "Traceback" not in message


def test_prepare_failures_are_readable(ctx, uploads):
    handlers = IdentityHandlers(ctx)
    message, gallery, rejected, _, rows = handlers.prepare(uploads["bad"], "nobody", "", False)
    assert "None of the 2 photos can be used for training" in message and gallery == [] and rows == []
    assert [r[0] for r in rejected] == ["noface_blank_gray.jpg", "corrupt_zero_bytes.jpg"]
    assert rejected[0][1].startswith("No face found") and rejected[1][1] == "The file is empty."
    assert "data-code='invalid_request'" in handlers.prepare([], "x", "", False)[0]
    assert "data-code='invalid_name'" in handlers.prepare(uploads["obama"][:1], "  ", "", False)[0]
    assert "data-code='invalid_name'" in handlers.prepare(uploads["obama"][:1], "bad name!", "", False)[0]

    def broken(backend=None):
        raise RuntimeError("model file vanished")

    ctx.analyzer = broken
    message = handlers.prepare(uploads["obama"][:1], "x", "", False)[0]
    assert "Something went wrong inside FaceChain (RuntimeError: model file vanished)" in message


def test_delete_needs_a_choice_and_leaves_nothing_of_the_identity_on_screen(ctx, uploads):
    handlers = IdentityHandlers(ctx)
    message, gallery, rejected, _, _ = handlers.prepare(uploads["obama"][:2], "twin", "a man", False)
    assert ctx.identities.get("twin").phrase == "a man" and gallery
    details, *unchanged = handlers.delete(None, "twin")  # nothing chosen, or the JS confirmation was declined
    assert "Nothing was deleted." in details and "facechain-error" not in details
    assert all(value == gr.update() for value in unchanged)
    details, choices, rows, best, crops, reasons, prepared = handlers.delete("twin", "twin")
    assert "deleted" in details and choices["choices"] == [] and rows == []
    assert (best, crops, reasons, prepared) == (None, [], [], "")  # the deleted identity's crops and report are gone
    details, *_ = handlers.delete("twin", "other")
    assert "data-code='identity_not_found'" in details
    handlers.prepare(uploads["obama"][:2], "keep", "", False)
    handlers.prepare(uploads["obama"][:2], "gone", "", False)
    *_, crops, reasons, prepared = handlers.delete("gone", "keep")  # the view shows another preparation: kept
    assert (crops, reasons, prepared) == (gr.update(), gr.update(), gr.update())
