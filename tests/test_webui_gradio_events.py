"""The FaceChain tab's events run through gradio's own pipeline (`Blocks.process_api`: payload -> preprocess ->
handler -> postprocess), the way the browser's calls do, on whichever gradio is installed: 3.41 (A1111) or 4.40 (Forge,
via tools/forge_stack_check.sh). The handler tests call the handlers directly; these catch what only gradio sees:
the File payload each version sends, Gallery/Dataframe/Image values, `gr.update` dicts for Dropdown/CheckboxGroup."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.webui import tab

GRADIO4 = int(gr.__version__.split(".")[0]) >= 4


@pytest.fixture
def ctx(tmp_path) -> FaceChainContext:
    return FaceChainContext(Settings(models_dir=tmp_path / "facechain", face_backend="dlib"))


@pytest.fixture
def upload_dir(tmp_path, monkeypatch) -> Path:
    """gradio 4 accepts input files only from its upload folder (GRADIO_TEMP_DIR): keep it inside tmp_path."""
    folder = tmp_path / "gradio"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


class Page:
    """One browser session on a built Blocks: events are found by handler name and run through process_api."""

    def __init__(self, block: gr.Blocks) -> None:
        self.block = block
        if GRADIO4:
            from gradio.state_holder import SessionState

            self.state: Any = SessionState(block)
        else:
            self.state = {}

    def event(self, handler_name: str, output: Any = None) -> Any:
        fns = self.block.fns.items() if isinstance(self.block.fns, dict) else enumerate(self.block.fns)
        found = [(index, fn.fn) for index, fn in fns if getattr(fn.fn, "__name__", "") == handler_name
                 and (output is None or output._id in [o._id for o in fn.outputs])]
        # one handler may serve several triggers (a click, page load, opening the view): the same function
        assert found and len({(getattr(fn, "__func__", fn), id(getattr(fn, "__self__", None))) for _, fn in found}) == 1, \
            f"{handler_name}: {len(found)} events"
        return found[0][0]

    def run(self, handler_name: str, inputs: list[Any], output: Any = None) -> list[Any]:
        result = asyncio.run(self.block.process_api(self.event(handler_name, output), inputs, self.state))
        return result["data"]


def file_payload(path: Path, upload_dir: Path, shown_name: str) -> dict[str, Any]:
    """What the browser sends for one uploaded file, after gradio stored it (3.41: name/is_file; 4.x: FileData)."""
    stored = upload_dir / f"{len(list(upload_dir.iterdir()))}{path.suffix}"
    shutil.copy(path, stored)
    if GRADIO4:
        return {"path": str(stored), "orig_name": shown_name, "meta": {"_type": "gradio.FileData"}}
    return {"name": str(stored), "orig_name": shown_name, "data": None, "is_file": True}


def choice_values(update: dict[str, Any]) -> list[Any]:
    """Values of a Dropdown/CheckboxGroup update (gradio 4 normalises choices to (name, value) pairs)."""
    assert update.get("__type__") == "update", update
    return [c[1] if isinstance(c, (list, tuple)) else c for c in update["choices"]]


def gallery_captions(value: Any) -> list[str]:
    """Captions of a postprocessed Gallery value (3.41: [file dict, caption] pairs; 4.x: {image, caption} dicts)."""
    if GRADIO4:
        assert all(item["image"]["path"] for item in value)
        return [item["caption"] for item in value]
    assert all(Path(item[0]["name"]).is_file() for item in value)
    return [item[1] for item in value]


def test_prepare_show_and_delete_run_through_gradio(ctx, faces_table, edge_table, upload_dir):
    block = tab.build_tab(ctx)
    page = Page(block)
    photos = [Path(r["file"]) for r in faces_table if r["identity"] == "obama"][:3]
    blank = next(Path(r["file"]) for r in edge_table if Path(r["path"]).name == "noface_blank_gray.jpg")
    files = [file_payload(p, upload_dir, f"me{i}.jpg") for i, p in enumerate(photos)]
    files.append(file_payload(blank, upload_dir, "blank.jpg"))

    message, gallery, rejected, chosen, table = page.run("prepare", [files, "obama", "", False])
    assert "Identity <b>obama</b> saved" in message and "3 of 4 photos accepted" in message
    captions = gallery_captions(gallery)
    assert len(captions) == 3 and all("quality" in c for c in captions)
    assert rejected["headers"] == ["photo", "why it was not used"]
    assert len(rejected["data"]) == 1 and rejected["data"][0][1].startswith("No face found")
    assert choice_values(chosen) == ["obama"] and chosen["value"] == "obama"
    assert table["headers"][0] == "name" and [row[0] for row in table["data"]] == ["obama"]

    best, details = page.run("show", ["obama"])
    assert best and "3 photos" in details  # 3.41: a data URL; 4.x: a FileData dict of the cached copy
    if GRADIO4:
        assert Path(best["path"]).is_file()

    message, chosen, table, best, crops, reasons, prepared = page.run("delete", ["obama", "obama"])
    assert "deleted" in message and choice_values(chosen) == []
    assert table["headers"][0] == "name" and all(cell == "" for cell in table["data"][0])  # empty: headers kept
    assert ctx.identities.list() == [] and best is None and crops == [] and prepared == ""
    assert all(cell == "" for cell in reasons["data"][0])  # the deleted identity's report is gone too
    message, *unchanged = page.run("delete", [None, "obama"])  # the confirmation was declined
    assert "Nothing was deleted." in message and "facechain-error" not in message


def test_lists_refresh_through_gradio(ctx, faces_table, upload_dir):
    block = tab.build_tab(ctx)
    page = Page(block)
    photos = [Path(r["file"]) for r in faces_table if r["identity"] == "obama"][:2]
    page.run("prepare", [[file_payload(p, upload_dir, p.name) for p in photos], "twin", "", False])

    identities, styles, info, cards = page.run("refresh_lists", [None, ["wedding", "gone"]])
    assert "twin" in choice_values(identities)
    assert set(choice_values(styles)) == {s.id for s in ctx.styles.list()} and len(choice_values(styles)) >= 2
    assert styles["value"] == ["wedding"]  # a style that no longer exists is unticked
    names = {s.id: s.name for s in ctx.styles.list()}
    if not GRADIO4:  # gradio 3 passes the (display name, id) pairs through as they are
        assert [tuple(c) for c in styles["choices"]] == [(names[i], i) for i in choice_values(styles)]
    assert "Wedding" in cards
    train_identities, train_info = page.run("identities", [None])
    assert "twin" in choice_values(train_identities)
