"""Issue 8 §3, the surfaces of LoRA / FACT conditioning: argument schema (API, alwayson, positional controls),
"auto" resolution, the comments a user sees, infotext written and pasted back, the accordion's controls and the
tab's model table.

FACT's files are only looked up here (placeholders with the release names); loading and hooking FACT are tested in
test_fact_*.py.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import gradio as gr
import pytest
from generation_helpers import IDENTITY, LORA_NAME, SEED, TRAIN_PHOTOS, install_sampler, make_context
from modules import processing, scripts
from modules.infotext_utils import parse_generation_parameters, quote

from facechain_ext.errors import FaceChainError
from facechain_ext.fact.files import ADAPTER_FILES, ENCODER_FILE, converted_name
from facechain_ext.generation_state import GenerationState
from facechain_ext.infotext import args_from_infotext, args_to_infotext, used_conditioning
from facechain_ext.portraits import resolve_generation
from facechain_ext.prompts import PromptPlan
from facechain_ext.schemas import ARG_NAMES, args_from_script_args, args_schema, parse_args
from facechain_ext.webui.conditioning_ui import fact_photo_choices, likeness_note
from facechain_ext.webui.script import FaceChainScript
from facechain_ext.webui.script_ui import args_with_ids

NOLORA = "fresh"  # an identity made a moment ago: no LoRA trained


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    from facechain_ext.prep import PrepOptions, prepare_photos

    ctx = make_context(tmp_path_factory.mktemp("conditioning"), data_dir)
    folder = data_dir / "faces" / "deepface_angelina"
    report = prepare_photos([(name, folder / name) for name in TRAIN_PHOTOS[:2]], ctx.analyzer(), PrepOptions())
    ctx.identities.create(NOLORA, report)
    return ctx


@pytest.fixture
def fact_installed(ctx):
    """Placeholder FACT release files where FACT looks for them (their contents are never read here)."""
    folder = ctx.settings.models_dir / "fact"
    folder.mkdir(parents=True)
    for name in (ENCODER_FILE, ADAPTER_FILES["maj"]):
        (folder / name).write_bytes(b"placeholder")
    yield folder
    shutil.rmtree(folder)


def resolve(ctx, identity: str, **fields) -> GenerationState:
    return resolve_generation(ctx, parse_args({"identity": identity, **fields}))


def test_the_schema_and_every_argument_form_carry_the_conditioning_fields():
    props = args_schema()["properties"]
    assert props["conditioning"]["enum"] == ["auto", "lora", "fact", "lora+fact"] and props["conditioning"]["default"] == "auto"
    assert (props["fact_scale"]["minimum"], props["fact_scale"]["maximum"], props["fact_scale"]["default"]) == (0, 1.5, 0.5)
    assert (props["fact_photo_count"]["minimum"], props["fact_photo_count"]["maximum"]) == (1, 4)
    assert "quality" in props["fact_photos"]["description"]
    alwayson = args_from_script_args([{"identity": "a", "conditioning": "lora+fact", "fact_scale": 0.8}])
    assert (alwayson.conditioning, alwayson.fact_scale, alwayson.fact_photo_count) == ("lora+fact", 0.8, 1)
    old_positional = [True, "a", 0.9, "None", True, 0.7, True, 0, 0.0, False]  # a client of the 10-control version
    assert args_from_script_args(old_positional).conditioning == "auto"
    restoration = ["auto", "auto", 1.0]  # fusion backend, restore face, restore visibility
    values = [*old_positional, *restoration, "fact", 1.2, 3, ["photos/01.png"]]
    assert len(values) == len(ARG_NAMES)
    args = args_from_script_args(values)
    assert (args.conditioning, args.fact_scale, args.fact_photo_count, args.fact_photos) == ("fact", 1.2, 3, ["photos/01.png"])
    assert args_from_script_args([*old_positional, *restoration, "auto", 0.5, 1, []]).fact_photos is None
    for bad, field in (({"conditioning": "both"}, "conditioning"), ({"fact_scale": 1.6}, "fact_scale"),
                       ({"fact_photo_count": 5}, "fact_photo_count")):
        with pytest.raises(FaceChainError) as info:
            parse_args({"identity": "a", **bad})
        assert info.value.code == "invalid_request" and field in info.value.message


def test_auto_picks_the_lora_when_the_identity_has_one(ctx, fact_installed):
    state = resolve(ctx, IDENTITY)
    assert state.lora_name == LORA_NAME and state.wants_fact is False and state.comments == []
    both = resolve(ctx, IDENTITY, conditioning="lora+fact")
    assert both.lora_name == LORA_NAME and both.wants_fact is True and both.plan.face_lora == LORA_NAME
    fact_only = resolve(ctx, IDENTITY, conditioning="fact")
    assert fact_only.lora_name is None and fact_only.wants_fact is True and fact_only.plan.face_lora is None


def test_auto_without_a_lora_uses_fact_when_its_files_are_there(ctx, fact_installed):
    state = resolve(ctx, NOLORA)
    assert state.lora_name is None and state.wants_fact is True
    assert state.comments == [f"FaceChain: identity {NOLORA!r} has no trained LoRA yet; using FACT (train-free) for the likeness."]


def test_auto_without_a_lora_or_fact_says_which_file_is_missing_and_how_to_get_it(ctx):
    state = resolve(ctx, NOLORA)
    assert state.lora_name is None and state.wants_fact is False
    (text,) = state.comments
    folder = ctx.settings.models_dir / "fact"
    for part in (NOLORA, "no trained LoRA yet", ENCODER_FILE, str(folder), "Download transface_s",
                 "POST /facechain/v1/models/transface_s/download", "trigger and phrase only"):
        assert part in text, part
    assert resolve(ctx, NOLORA, conditioning="lora").comments == [
        f"FaceChain: identity {NOLORA!r} has no trained LoRA yet; using its trigger and phrase only."]


def test_a_generation_shows_the_comment_and_writes_what_it_used(ctx, fake_host, data_dir):
    install_sampler(data_dir)
    try:
        without = _generate(ctx, {"identity": NOLORA, "ranking": {"enabled": False}})
        with_lora = _generate(ctx, {"identity": IDENTITY, "fact_scale": 0.8, "ranking": {"enabled": False}})
    finally:
        processing.fake_sampler = None
    assert ENCODER_FILE in without.comments and "Download transface_s" in without.comments
    params = parse_generation_parameters(without.infotexts[0])
    assert params["FaceChain conditioning"] == "none" and "FaceChain FACT scale" not in params
    assert args_from_infotext(params).conditioning == "auto"  # "none" pastes back as auto
    params = parse_generation_parameters(with_lora.infotexts[0])
    assert params["FaceChain conditioning"] == "lora" and "FaceChain FACT scale" not in params
    assert params["FaceChain LoRA"] == LORA_NAME


def _generate(ctx, args: dict):
    script = FaceChainScript(ctx)
    runner = scripts.ScriptRunner()
    script.args_from, script.args_to, script.filename = 1, 2, "facechain.py"
    runner.alwayson_scripts = runner.scripts = [script]
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="portrait photo", seed=SEED, batch_size=1, n_iter=1, steps=10, width=512, height=512,
        do_not_save_samples=True, do_not_save_grid=True)
    p.scripts, p.script_args = runner, [0, args]
    return processing.process_images(p)


def _state(lora: str | None, fact: SimpleNamespace | None) -> GenerationState:
    return GenerationState(args=parse_args({"identity": "a"}), plan=PromptPlan(activation="x"), lora_name=lora, fact=fact)


def test_the_infotext_says_what_was_used_and_pastes_back():
    ran, stopped = SimpleNamespace(applied=True, off=None), SimpleNamespace(applied=True, off="SDXL checkpoint")
    never = SimpleNamespace(applied=False, off=None)  # the hook never ran (no sampling pass reached it)
    cases = [(("L", ran), "lora+fact"), (("L", stopped), "lora"), ((None, ran), "fact"), ((None, never), "none"),
             (("L", None), "lora"), ((None, None), "none")]
    assert [used_conditioning(_state(*given)) for given, _ in cases] == [want for _, want in cases]
    variants = [
        {"identity": "a", "conditioning": "lora+fact", "fact_scale": 0.8, "fact_photo_count": 3},
        {"identity": "a", "conditioning": "fact", "fact_scale": 1.25, "fact_photos": ["photos/02.png", "photos/00.png"]},
        {"identity": "a", "conditioning": "lora", "lora_weight": 0.7},
        {"identity": "a"},
    ]
    for fields in variants:
        args = parse_args(fields)
        line = ", ".join(f"{k}: {quote(v)}" for k, v in {"Steps": 20, **args_to_infotext(args)}.items())
        params = parse_generation_parameters(f"a portrait\n{line}")
        assert args_from_infotext(params) == args, fields
    older = parse_generation_parameters("x\nSteps: 20, FaceChain identity: a, FaceChain fusion: off, FaceChain ranking: on")
    restored = args_from_infotext(older)  # an image made before these fields existed
    assert (restored.conditioning, restored.fact_scale, restored.fact_photo_count) == ("auto", 0.5, 1)


def test_the_accordion_has_the_fact_controls_and_pasting_restores_them(ctx, fake_host):
    script = FaceChainScript(ctx)
    with gr.Blocks():
        controls = script.ui(is_img2img=False)
    assert len(controls) == len(ARG_NAMES)
    named = dict(zip(ARG_NAMES, controls, strict=True))
    assert named["conditioning"].value == "auto" and [c[1] for c in named["conditioning"].choices] == [
        "auto", "lora", "fact", "lora+fact"]
    assert (named["fact_scale"].minimum, named["fact_scale"].maximum, named["fact_scale"].value) == (0.0, 1.5, 0.5)
    assert (named["fact_photo_count"].minimum, named["fact_photo_count"].maximum) == (1, 4)
    assert named["fact_photos"].multiselect and named["fact_photos"].max_choices == 4
    assert args_from_script_args([c.value for c in controls]).enabled is False
    assert {"FaceChain conditioning", "FaceChain FACT scale", "FaceChain FACT photos"} <= set(script.paste_field_names)
    args = parse_args({"identity": NOLORA, "conditioning": "fact", "fact_scale": 0.65,
                       "fact_photos": ["photos/01.png", "photos/00.png"]})
    line = ", ".join(f"{k}: {quote(v)}" for k, v in args_to_infotext(args).items())
    params = parse_generation_parameters(f"a portrait\nSteps: 20, {line}")
    restored = {}
    for control, reader in script.infotext_fields:
        value = reader(params)
        restored[controls.index(control)] = value.get("value") if isinstance(value, dict) else value
    # the photo dropdown holds "name (quality …)" labels; the script reads them back as names (script_ui.args_with_ids)
    assert args_with_ids(ctx, args_from_script_args([restored[i] for i in range(len(controls))])) == args


def test_the_photo_list_follows_the_identity_and_keeps_a_pasted_choice(ctx, fake_host):
    script = FaceChainScript(ctx)
    with gr.Blocks() as demo:
        script.ui(is_img2img=False)
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns  # gradio 4: dict, gradio 3: list
    (follow,) = [f.fn for f in fns if getattr(f.fn, "__name__", "") == "follow_identity"]
    choices = fact_photo_choices(ctx, NOLORA)
    update, note = follow(NOLORA, ["photos/99.png", choices[1][1]])
    # the dropdown shows and holds "name (quality 0.91)" labels (gradio 3.41's Dropdown has no (label, value) pairs)
    assert update["choices"] == [label for label, _ in choices] and update["value"] == [choices[1][0]]  # unknown dropped
    assert NOLORA in note and "no LoRA yet" in note
    update, note = follow(None, [choices[0][1]])
    assert update["choices"] == [] and update["value"] == [] and note == ""


def test_the_generate_view_passes_the_likeness_fields(ctx, fake_host, data_dir):
    from facechain_ext.webui import tab_generate

    install_sampler(data_dir)
    try:
        handler = tab_generate._wrapped_handler(ctx)
        gallery, infotexts, _, status = handler(
            "task(facechain-fact)", NOLORA, ["studio_headshot"], 1, 512, 512, 10, 7.0, "Euler a", SEED, False,
            False, 0.7, False, 0, 0.0, False, "", "", "auto", "auto", 1.0, "fact", 0.9, 2, [],
        )
    finally:
        processing.fake_sampler = None
    assert len(gallery) == 1
    assert "FACT is off" in status and ENCODER_FILE in status  # asked for FACT: told exactly what is missing
    params = parse_generation_parameters(infotexts[0])
    assert params["FaceChain conditioning"] == "none"


def test_photo_choices_follow_quality_and_the_note_says_what_auto_does(ctx, fact_installed):
    from facechain_ext.fact.faceinput import identity_photos

    photos = identity_photos(ctx.identities.path(NOLORA))
    choices = fact_photo_choices(ctx, NOLORA)
    assert [value for _, value in choices] == [p.name for p in photos] and len(choices) == 2
    assert photos[0].score >= photos[1].score and "quality" in choices[0][0]
    assert fact_photo_choices(ctx, "nobody") == [] and fact_photo_choices(ctx, None) == []
    assert "Auto uses the LoRA" in likeness_note(ctx, IDENTITY) and LORA_NAME in likeness_note(ctx, IDENTITY)
    assert "Auto uses FACT" in likeness_note(ctx, NOLORA) and choices[0][0] in likeness_note(ctx, NOLORA)
    shutil.rmtree(fact_installed)
    missing = likeness_note(ctx, NOLORA)
    assert "no LoRA yet" in missing and ENCODER_FILE in missing and "Download transface_s" in missing
    fact_installed.mkdir()  # the fixture removes the folder again


def test_the_models_table_lists_each_fact_file_with_status_and_licence(ctx):
    """One line per model in the Models accordion; where each file goes and its licence behind the details toggle."""
    from facechain_ext.webui.tab_models import status_html

    def parts(html: str) -> tuple[dict[str, str], dict[str, str]]:
        summary, details = html.split("<details")
        rows = {row.split("<b>")[1].split("</b>")[0]: row for row in summary.split("<tr>") if "<b>" in row}
        items = {item.split("<b>")[1].split("</b>")[0]: item for item in details.split("<li>") if "<b>" in item}
        return rows, items

    rows, items = parts(status_html(ctx.settings))
    for name, file_name in (("transface_s", ENCODER_FILE), ("fact_adapter_maj", ADAPTER_FILES["maj"]),
                            ("fact_adapter_film", ADAPTER_FILES["film"])):
        assert "missing" in rows[name] and file_name in items[name] and "yucheng1996/FaceChain-FACT" in items[name]
    assert "Apache-2.0" in items["fact_adapter_maj"] and "no LICENSE file" in items["transface_s"]
    folder = ctx.settings.models_dir / "fact"
    folder.mkdir(parents=True)
    try:
        (folder / converted_name(ENCODER_FILE)).write_bytes(b"fp16")
        rows, items = parts(status_html(ctx.settings))
        assert "present" in rows["transface_s"] and converted_name(ENCODER_FILE) in items["transface_s"]
    finally:
        shutil.rmtree(folder)
