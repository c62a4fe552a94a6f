"""The Templates view: numbered faces, per-face choices, a run through gradio's own event pipeline on the stand-in
host (real photos, real identities), and "Send to FaceChain" buttons under the host's galleries."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import gradio as gr
import pytest
from modules import infotext_utils, processing, script_callbacks, shared
from PIL import Image
from template_helpers import install_painter, make_template_context, template_path
from test_webui_gradio_events import GRADIO4, Page, gallery_captions

from facechain_ext.errors import FaceChainError
from facechain_ext.imaging import load_image
from facechain_ext.webui import tab
from facechain_ext.webui.send_to import DESTINATION, SendToTemplates
from facechain_ext.webui.tab_templates import KEEP, MAX_SLOTS, TemplateOptions, args_from_slots, faces_view


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_template_context(tmp_path_factory.mktemp("templates_view"), data_dir)


@pytest.fixture
def host(fake_host, ctx, data_dir, tmp_path):
    install_painter(ctx, data_dir)
    shared.opts.outdir_img2img_samples = str(tmp_path / "outputs")
    yield tmp_path / "outputs"
    processing.fake_sampler = None


def image_payload(image: Image.Image, upload_dir: Path) -> object:
    """What the browser sends for an Image input (3.41: a data URL; 4.x: a FileData of the stored upload)."""
    if GRADIO4:
        path = upload_dir / f"template{len(list(upload_dir.iterdir()))}.png"
        image.save(path)
        return {"path": str(path), "meta": {"_type": "gradio.FileData"}}
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_faces_view_numbers_the_faces_or_says_why_not(ctx, data_dir):
    picture, text, count = faces_view(ctx, load_image(template_path(data_dir)))
    assert count == 2 and "2 faces" in text and picture.size == (1024, 601)
    picture, text, count = faces_view(ctx, load_image(data_dir / "edge" / "noface_blank_gray.jpg"))
    assert picture is None and count == 0 and "no_face" in text
    assert faces_view(ctx, None) == (None, "", 0)


def test_slots_become_template_arguments():
    options = TemplateOptions(strength=0.55, n=3, seed=5, pose=False)
    args = args_from_slots(["p02", KEEP, "angelina"], ["lora+fact", "lora", "lora"], options)
    assert [(f.index, f.identity, f.conditioning) for f in args.faces] == [(0, "p02", "lora+fact"), (2, "angelina", "lora")]
    assert (args.strength, args.n, args.seed, args.guidance.pose, args.guidance.canny) == (0.55, 3, 5, False, True)
    with pytest.raises(FaceChainError) as err:
        args_from_slots([KEEP, None], ["lora", "lora"], options)
    assert err.value.code == "invalid_request"


def test_a_template_run_through_gradio_saves_and_shows_ranked_results(ctx, data_dir, host, tmp_path, monkeypatch):
    upload = tmp_path / "gradio"
    upload.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload))
    block = tab.build_tab(ctx)
    page = Page(block)
    payload = image_payload(load_image(template_path(data_dir)), upload)
    shown = page.run("show_faces", [payload])
    assert shown[0] and "2 faces" in shown[1]
    visible = [update["visible"] for update in shown[2:2 + MAX_SLOTS]]
    assert visible == [True, True] + [False] * (MAX_SLOTS - 2)
    gallery = next(b for b in block.blocks.values() if getattr(b, "elem_id", None) == "facechain_tpl_gallery")
    names = ["angelina", "p02"] + [KEEP] * (MAX_SLOTS - 2)
    conds = ["lora"] * MAX_SLOTS
    controls = [0.6, 2, 11, False, False, True, 0.7, "", "", 8, 7.0, "Euler a", 512]
    results, texts, selected, status = page.run("f", ["task(tpl1)", payload, *names, *conds, *controls], gallery)
    captions = gallery_captions(results)
    assert len(captions) == 2 and all(c.startswith("similarity ") for c in captions)
    saved = sorted(host.glob("*.png"))
    assert len(saved) == 2 and "2 results (guidance: none)" in status
    assert selected and "FaceChain similarity" in selected
    assert [c["denoising_strength"] for c in processing.fake_sampler.calls] == [0.6] * 4
    assert processing.fake_sampler.calls[0]["sampler_name"] == "Euler a"
    with Image.open(saved[0]) as first:
        assert "FaceChain template faces: 1=angelina lora angelina_v1 0.9; 2=p02 lora" in first.info["parameters"]


def _host_gallery_row(tabname: str) -> gr.Gallery:
    """What the host's create_output_panel builds, firing on_after_component callbacks as its patched gradio does."""
    gallery = gr.Gallery(elem_id=f"{tabname}_gallery")
    script_callbacks.after_component_callback(gallery, elem_id=f"{tabname}_gallery")
    with gr.Row(elem_id=f"image_buttons_{tabname}"):
        for target in ("img2img", "inpaint", "extras"):
            button = gr.Button(elem_id=f"{tabname}_send_to_{target}")
            script_callbacks.after_component_callback(button, elem_id=f"{tabname}_send_to_{target}")
    return gallery


def test_send_to_facechain_buttons_join_the_host_galleries_and_bind_to_the_template(ctx, fake_host):
    send_to = SendToTemplates()
    script_callbacks.on_after_component(send_to.on_after_component)
    with gr.Blocks():
        galleries = {name: _host_gallery_row(name) for name in ("txt2img", "img2img", "extras")}
    assert set(send_to.buttons) == {"txt2img", "img2img", "extras"}
    assert all(not b.visible for b in send_to.buttons.values())  # nothing to send to until the view exists
    block = tab.build_tab(ctx, send_to=send_to)
    template = next(b for b in block.blocks.values() if getattr(b, "elem_id", None) == "facechain_tpl_image")
    assert infotext_utils.paste_fields[DESTINATION]["init_img"] is template
    bindings = [b for b in infotext_utils.registered_param_bindings if b.tabname == DESTINATION]
    assert {b.source_image_component for b in bindings} == set(galleries.values())
    assert all(b.paste_button.visible and b.paste_button.elem_id.endswith("_send_to_facechain") for b in bindings)
    js = (Path(__file__).resolve().parents[1] / "javascript" / "facechain_templates.js").read_text()
    assert f"function switch_to_{DESTINATION}(" in js


def test_no_binding_when_the_templates_view_fails(ctx, fake_host, monkeypatch):
    send_to = SendToTemplates()
    script_callbacks.on_after_component(send_to.on_after_component)
    with gr.Blocks():
        _host_gallery_row("txt2img")
    from facechain_ext.webui import tab_templates

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tab_templates, "build", broken)
    tab.build_tab(ctx, send_to=send_to)
    assert DESTINATION not in infotext_utils.paste_fields
    assert not [b for b in infotext_utils.registered_param_bindings if b.tabname == DESTINATION]
    assert not send_to.buttons["txt2img"].visible
