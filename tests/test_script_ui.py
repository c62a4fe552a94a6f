"""The accordion's controls and infotext pasting, and the Generate view (build + handler through the host wrapper)."""

from __future__ import annotations

import gradio as gr
import pytest
from generation_helpers import IDENTITY, SEED, install_sampler, make_context
from gradio_helpers import choice_labels, handler_functions, load_outputs
from modules import processing, progress, shared
from modules.infotext_utils import parse_generation_parameters, quote

from facechain_ext.infotext import args_to_infotext
from facechain_ext.schemas import ARG_NAMES, args_from_script_args, parse_args
from facechain_ext.webui import tab_generate
from facechain_ext.webui.script import FaceChainScript
from facechain_ext.webui.script_ui import args_with_ids


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_context(tmp_path_factory.mktemp("facechain_ui"), data_dir)


@pytest.fixture
def host(fake_host, data_dir):
    yield install_sampler(data_dir)
    processing.fake_sampler = None


def build_accordion(ctx):
    script = FaceChainScript(ctx)
    with gr.Blocks():
        controls = script.ui(is_img2img=False)
    return script, controls


def test_accordion_controls_defaults_and_identity_choices(ctx, fake_host):
    script, controls = build_accordion(ctx)
    assert len(controls) == len(ARG_NAMES)
    assert controls[1].choices and IDENTITY in [c[0] if isinstance(c, tuple) else c for c in controls[1].choices]
    defaults = [control.value for control in controls]  # what the host's API fills in for alwayson_scripts
    assert args_from_script_args(defaults).enabled is False
    assert script.title() == "FaceChain" and script.show(False) is not False
    assert set(script.paste_field_names) >= {"FaceChain identity", "FaceChain style", "FaceChain ranking"}


def rows_under(block):
    """Every gr.Row below `block` with its children (to check the layout)."""
    found = []
    for child in getattr(block, "children", []):
        if isinstance(child, gr.Row):
            found.append(child)
        found.extend(rows_under(child))
    return found


def row_controls(row):
    """The controls in a row (gradio 3 wraps neighbouring form controls in a gr.Form)."""
    controls = []
    for child in row.children:
        controls.extend(row_controls(child) if isinstance(child, gr.components.Form) else [child])
    return controls


def test_the_switch_is_the_accordion_header_like_hires_fix(ctx, fake_host):
    """The host's InputAccordion (modules/ui_components.py) carries "enabled": visible while collapsed."""
    from modules.ui_components import InputAccordionImpl

    script = FaceChainScript(ctx)
    with gr.Blocks() as page:
        controls = script.ui(is_img2img=False)
    enabled = controls[0]
    assert isinstance(enabled, InputAccordionImpl) and enabled.value is False
    assert enabled.accordion.label == "FaceChain" and "input-accordion" in enabled.accordion.elem_classes
    assert enabled.elem_id == f"{enabled.accordion.elem_id}-checkbox" and enabled.visible is False
    # no control alone on a row; every row of the accordion holds two or more
    rows = rows_under(enabled.accordion)
    assert len(rows) >= 4 and all(len(row_controls(row)) >= 2 for row in rows)
    # limits are FaceChainArgs' own (the API's): LoRA weight 0..2, keep-best-K up to 100
    assert (controls[2].minimum, controls[2].maximum) == (0.0, 2.0) and controls[7].maximum == 100
    # styles show their display names (gradio 3.41's Dropdown has no (label, value) pairs: the hooks map them back)
    styles = choice_labels(controls[3])
    assert styles[0] == "None" and "Wedding" in styles and "wedding" not in styles
    # the lists are read again on every page load
    assert any({controls[1]._id, controls[3]._id} <= set(outputs) for outputs in load_outputs(page))


def test_without_input_accordion_the_switch_is_a_checkbox_inside(ctx, fake_host, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "modules.ui_components", None)  # a host before A1111 1.7
    script = FaceChainScript(ctx)
    with gr.Blocks():
        controls = script.ui(is_img2img=False)
    assert type(controls[0]) is gr.Checkbox and controls[0].label == "Enable FaceChain"
    assert len(controls) == len(ARG_NAMES) and args_from_script_args([c.value for c in controls]).enabled is False


def test_lists_refresh_keeps_a_pasted_identity_and_drops_a_vanished_style(ctx, fake_host):
    script = FaceChainScript(ctx)
    with gr.Blocks() as page:
        script.ui(is_img2img=False)
    refresh = next(fn for fn in handler_functions(page) if getattr(fn, "__name__", "") == "refresh_choices")
    identity, style = refresh("pasted_person", "gone_style")
    assert identity["value"] == "pasted_person" and IDENTITY in identity["choices"]
    assert style["value"] == "None" and "Wedding" in [c[0] if isinstance(c, tuple) else c for c in style["choices"]]
    identity, style = refresh(IDENTITY, "Wedding")
    assert (identity["value"], style["value"]) == (IDENTITY, "Wedding")


def test_pasting_an_infotext_restores_the_controls(ctx, fake_host):
    script, controls = build_accordion(ctx)
    args = parse_args({"identity": IDENTITY, "lora_weight": 0.75, "style": "wedding", "fusion": {"strength": 0.55},
                       "ranking": {"top_k": 3, "min_score": 0.4, "drop_no_face": True}})
    line = ", ".join(f"{k}: {quote(v)}" for k, v in {"Steps": 20, "Seed": 1, "Size": "512x512", **args_to_infotext(args)}.items())
    params = parse_generation_parameters(f"a portrait\n{line}")
    restored = {}
    for control, reader in script.infotext_fields:
        value = reader(params)
        restored[controls.index(control)] = value.get("value") if isinstance(value, dict) else value
    values = [restored[i] for i in range(len(controls))]
    assert values[3] == "Wedding"  # the dropdown shows the name; the hooks read it back as the id
    assert args_with_ids(ctx, args_from_script_args(values)) == args
    # an image made without FaceChain switches it off and leaves the other controls alone
    plain = parse_generation_parameters("a cat\nSteps: 20, Seed: 1, Size: 512x512")
    readers = dict(script.infotext_fields)
    assert readers[controls[0]](plain) is False
    assert readers[controls[1]](plain) == gr.update()


def test_generate_view_builds_and_its_handler_runs_under_the_host_wrapper(ctx, host):
    from modules import infotext_utils

    infotext_utils.registered_param_bindings.clear()
    with gr.Blocks():
        tab_generate.build(ctx)
    bindings = infotext_utils.registered_param_bindings
    assert sorted(b.tabname for b in bindings) == ["img2img", "inpaint"]
    assert all(b.source_image_component.elem_id == "facechain_gen_gallery" for b in bindings)
    assert all(b.source_text_component.elem_id == "facechain_gen_selected_info" for b in bindings)
    handler = tab_generate._wrapped_handler(ctx)
    gallery, infotexts, selected, status = handler(
        "task(facechain-test)", IDENTITY, ["studio_headshot", "wedding"], 2, 512, 512, 10, 7.0, "Euler a", SEED + 2,
        False, True, 0.7, True, 0, 0.0, False, "", "",
    )
    assert len(gallery) == 4 and len(infotexts) == 4 and selected == infotexts[0]
    scores = [float(caption.split("similarity ")[1]) for _, caption in gallery]
    assert scores == sorted(scores, reverse=True)
    styles = {caption.split(" · ")[0] for _, caption in gallery}
    assert styles == {"Studio headshot", "Wedding"}  # people read display names
    names = {s.id: s.name for s in ctx.styles.list()}
    for (_, caption), text in zip(gallery, infotexts, strict=True):
        params = parse_generation_parameters(text)
        assert names[params["FaceChain style"]] == caption.split(" · ")[0]  # the infotext keeps the id
        assert params["Size"] == "512x512"  # "use style settings" was off
    assert "task(facechain-test)" in progress.finished_tasks and shared.state.history
    assert "4 portraits" in status


def test_generate_view_reports_errors_instead_of_raising(ctx, host):
    handler = tab_generate._wrapped_handler(ctx)
    result = handler("task(x)", IDENTITY, [], 2, 512, 512, 10, 7.0, "Euler a", SEED, True, True, 0.7, True, 0, 0.0, False, "", "")
    assert result[0] == [] and "Choose at least one style" in result[-1]
    result = handler("task(y)", "nobody", ["wedding"], 2, 512, 512, 10, 7.0, "Euler a", SEED, True, True, 0.7, True, 0, 0.0, False, "", "")
    assert "data-code='identity_not_found'" in result[-1] and "identity_not_found<" not in result[-1]
    assert host.calls == []  # nothing was generated for a request that cannot run


def test_style_settings_fill_the_job_fields(ctx):
    options = tab_generate.GenerateOptions(identity=IDENTITY, styles=["film_photo"], width=768, cfg_scale=9.0)
    fields = tab_generate.job_fields(options, ctx.styles.get("film_photo"))
    assert (fields["width"], fields["height"], fields["cfg_scale"], fields["sampler_name"]) == (512, 768, 6.5, "DPM++ 2M")
    options.use_style_settings = False
    fields = tab_generate.job_fields(options, ctx.styles.get("film_photo"))
    assert (fields["width"], fields["cfg_scale"]) == (768, 9.0)


def test_entry_file_exposes_the_script_class_bound_to_the_extension_context(fake_host):
    """The host registers Script subclasses found in the entry file's namespace (modules/scripts.py load_scripts)."""
    import inspect
    from pathlib import Path

    from modules import script_loading, scripts

    entry = Path(__file__).resolve().parents[1] / "scripts" / "facechain.py"
    module = script_loading.load_module(str(entry))
    found = [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, scripts.Script)]
    assert len(found) == 1 and issubclass(found[0], FaceChainScript)
    bound = found[0].bound_context
    assert bound is not None and found[0]().context() is bound  # the host's no-argument instance shares it
    assert FaceChainScript.bound_context is None  # the base class is untouched: a reload gets a fresh subclass
