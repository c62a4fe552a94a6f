"""Prompt assembly, FaceChainArgs parsing/schema, infotext round trips and per-job state (pure, no host)."""

from __future__ import annotations

import json

import pytest
from modules.infotext_utils import parse_generation_parameters, quote

from facechain_ext.errors import FaceChainError
from facechain_ext.generation_state import GenerationState, attach_state, detach_state, get_state
from facechain_ext.infotext import ARG_INFOTEXT_KEYS, KEY_FUSION, args_from_infotext, args_to_infotext, fusion_text
from facechain_ext.prompts import build_negative, build_prompt, build_prompts, lora_names, plan_prompts
from facechain_ext.schemas import FaceChainArgs, FusionArgs, args_from_script_args, args_schema, args_to_dict, parse_args
from facechain_ext.styles import parse_style

STYLE = parse_style({
    "id": "film", "name": "Film", "prompt": "35mm film photo of {identity}, fine grain, soft daylight",
    "negative_prompt": "blurry, watermark", "face_lora_multiplier": 0.8, "style_multiplier": 0.4,
    "style_lora": {"file": "styles/film_grain.safetensors"},
})


def plan(**changes):
    values = dict(activation="fcsks, a woman", lora_name="alice", lora_weight=0.9, style=STYLE, style_lora_available=True)
    values.update(changes)
    return plan_prompts(**values)


def test_empty_prompt_gets_identity_style_and_scaled_loras():
    text = build_prompt("", plan())
    assert text == "35mm film photo of fcsks, a woman, fine grain, soft daylight <lora:alice:0.72> <lora:film_grain:0.4>"


def test_style_lora_left_out_when_the_file_is_missing():
    text = build_prompt("", plan(style_lora_available=False))
    assert lora_names(text) == {"alice"}


def test_no_style_puts_identity_after_user_prompt():
    assert build_prompt("a portrait, studio light", plan(style=None)) == "a portrait, studio light, fcsks, a woman <lora:alice:0.9>"


def test_nothing_the_user_typed_is_repeated():
    user = "Photo of FCSKS   smiling, fine   GRAIN <lora:Alice:0.5>"
    text = build_prompt(user, plan())
    assert text.startswith(user)
    added = text[len(user):].lower()
    assert "fcsks" not in added  # the trigger is already there (case/whitespace-insensitive, inside a phrase)
    assert "fine grain" not in added
    assert "<lora:alice" not in added  # the user's own LoRA tag (and weight) wins
    assert "a woman" in added and "soft daylight" in added
    assert text.lower().count("<lora:alice") == 1


def test_identity_placeholder_falls_back_when_identity_already_typed():
    text = build_prompt("fcsks, a woman", plan())
    assert text.startswith("fcsks, a woman, 35mm film photo of the subject")
    assert text.lower().count("fcsks") == 1


def test_building_twice_changes_nothing():
    once = build_prompt("outdoor", plan())
    assert build_prompt(once, plan()) == once
    negative = build_negative("lowres", plan())
    assert build_negative(negative, plan()) == negative


def test_negative_prompt_gets_only_missing_style_fragments():
    assert build_negative("", plan()) == "blurry, watermark"
    assert build_negative("Blurry,  bad hands", plan()) == "Blurry,  bad hands, watermark"


def test_word_boundaries_not_substrings():
    # "grainy" is not "grain"; "fcsksx" is not the trigger
    text = build_prompt("grainy fcsksx", plan(style=None))
    assert "fcsks, a woman" in text


def test_build_prompts_batch():
    prompts, negatives = build_prompts(["a", "b"], ["", "ugly"], plan(style=None))
    assert prompts == ["a, fcsks, a woman <lora:alice:0.9>", "b, fcsks, a woman <lora:alice:0.9>"]
    assert negatives == ["", "ugly"]


def test_parse_args_accepts_dict_json_none_and_instance():
    data = {"identity": "alice", "style": "film", "ranking": {"top_k": 3}}
    from_dict = parse_args(data)
    assert from_dict.enabled and from_dict.ranking.top_k == 3 and from_dict.fusion.strength == 0.7
    assert parse_args(json.dumps(data)) == from_dict
    assert parse_args(from_dict) is from_dict
    assert parse_args(None).enabled is False
    assert parse_args("").enabled is False


@pytest.mark.parametrize(
    "data, words, path",
    [
        ({"identity": "a", "fusion": {"strength": 1.5}}, "strength (in fusion) must be at most 1", "fusion.strength"),
        ({"identity": "a", "ranking": {"top_k": 0}}, "top_k (in ranking) must be at least 1", "ranking.top_k"),
        ({"identity": "a", "lora_weight": -1}, "lora_weight must be at least 0", "lora_weight"),
        ({"identity": "a", "colour": "red"}, "colour is not a known field", "colour"),
        ({"enabled": True}, "no identity is chosen; choose one or switch FaceChain off", "identity"),
        ("{not json", "not valid JSON", None),
        ('{"identity": "a", "lora_weight": NaN}', "NaN is not a finite number", None),
        ([1, 2], "expected an object", None),
    ],
)
def test_parse_args_errors_name_the_field_in_words(data, words, path):
    """The message names the field in words (never a dotted path); programs get the exact path in `problems`."""
    with pytest.raises(FaceChainError) as info:
        parse_args(data)
    assert info.value.code in ("invalid_request", "invalid_json", "non_finite_number") and info.value.http_status == 422
    assert words in info.value.message and info.value.message.startswith("FaceChain settings: ")
    assert info.value.message.endswith(".") and (path is None or "." not in path or path not in info.value.message)
    if path is not None:
        assert any(problem.startswith(path) for problem in info.value.context["problems"])


def test_schema_lists_the_arguments():
    schema = args_schema()
    assert {"enabled", "identity", "lora", "lora_weight", "style", "fusion", "ranking"} <= set(schema["properties"])
    text = json.dumps(schema)
    assert "top_k" in text and "strength" in text and "drop_no_face" in text


@pytest.mark.parametrize(
    "data",
    [
        {"identity": "alice"},
        {"identity": "bob_2", "lora": "bob_v3", "lora_weight": 0.85, "style": "wedding",
         "fusion": {"enabled": False}, "ranking": {"top_k": 4, "min_score": 0.35, "drop_no_face": True}},
        {"identity": "c-d", "fusion": {"strength": 0.55}, "ranking": {"enabled": False}},
        {"identity": "e", "ranking": {"min_score": -0.2}},
        {"identity": "f", "fusion": {"backend": "inswapper", "restore_face": True, "restore_visibility": 0.6}},
        {"identity": "g", "fusion": {"strength": 0.5, "restore_face": False}},
    ],
)
def test_infotext_round_trip_through_the_host_format(data):
    args = parse_args(data)
    params = args_to_infotext(args)
    assert set(params) <= set(ARG_INFOTEXT_KEYS)
    line = ", ".join(f"{k}: {quote(v)}" for k, v in {"Steps": 20, "Sampler": "Euler a", **params}.items())
    parsed = parse_generation_parameters(f"a prompt\nNegative prompt: ugly\n{line}")
    assert args_from_infotext(parsed) == args
    assert args_to_dict(args_from_infotext(parsed)) == args_to_dict(args)


def test_infotext_of_images_without_facechain_is_none_and_fusion_notes_parse():
    assert args_from_infotext({"Steps": "20"}) is None
    params = {**args_to_infotext(parse_args({"identity": "a"})), KEY_FUSION: "0.7 (not applied - no face found)"}
    assert args_from_infotext(params).fusion.strength == 0.7
    # images made before the infotext was worded for people still paste back
    old = {**params, KEY_FUSION: "0.7 not-applied-no_face", "FaceChain ranking": "on top_k=4 min_score=0.35 drop_no_face"}
    restored = args_from_infotext(old)
    assert restored.fusion.strength == 0.7
    assert (restored.ranking.top_k, restored.ranking.min_score, restored.ranking.drop_no_face) == (4, 0.35, True)


def test_positional_control_values_and_one_dict_argument():
    positional = [True, "alice", 0.8, "film", True, 0.6, True, 2, 0.3, True]
    args = args_from_script_args(positional)
    assert (args.identity, args.lora_weight, args.style, args.fusion.strength) == ("alice", 0.8, "film", 0.6)
    assert (args.ranking.top_k, args.ranking.min_score, args.ranking.drop_no_face) == (2, 0.3, True)
    # UI conventions: style "None", top-K 0 and minimum 0 mean "off"
    off = args_from_script_args([True, "alice", 0.9, "None", False, 0.7, True, 0, 0.0, False])
    assert off.style is None and off.ranking.top_k is None and off.ranking.min_score is None and not off.fusion.enabled
    assert args_from_script_args([False, "alice"]).enabled is False
    assert args_from_script_args([]).enabled is False
    # alwayson_scripts: ONE dict at the first position, the host fills the rest with the controls' defaults
    one = args_from_script_args([{"identity": "alice", "style": "film"}, None, 0.9, "None", True, 0.7, True, 0, 0, False])
    assert one.identity == "alice" and one.style == "film" and one.enabled
    assert args_from_script_args(['{"identity": "bob"}']).identity == "bob"
    # the restoration controls come last (older positional calls stay valid); the radio says auto/on/off
    restoring = args_from_script_args([True, "alice", 0.9, "None", True, 0.7, True, 0, 0.0, False, "inswapper", "on", 0.4])
    assert (restoring.fusion.backend, restoring.fusion.restore_face, restoring.fusion.restore_visibility) == ("inswapper", True, 0.4)
    assert args_from_script_args(positional).fusion.restore_face is None
    with pytest.raises(FaceChainError):
        args_from_script_args([True, "alice", 0.9, "None", True, 0.7, True, 0, 0.0, False, "auto", "sometimes", 1.0])
    with pytest.raises(FaceChainError):
        args_from_script_args([True, None])  # enabled without identity


def test_job_lives_on_the_processing_object():
    class P:
        pass

    p = P()
    state = GenerationState(args=FaceChainArgs(identity="a"), plan=plan())
    attach_state(p, state)
    assert get_state(p) is state
    first = state.add_record(seed=5, subseed=9)
    state.add_record(seed=6, subseed=10)
    assert state.find_record(5, 9) is first and state.find_record(7, 1) is None
    assert fusion_text(0.7, first) == "0.7" and fusion_text(None) == "off"
    first.fusion_note = "no_face"
    assert fusion_text(0.7, first) == "0.7 (not applied - no face found)"
    restored = state.add_record(seed=8, subseed=1)
    restored.fused = restored.restored = True
    fusion = FusionArgs(restore_face=True, restore_visibility=0.5)
    assert fusion_text(fusion, restored) == "0.7; face restoration on; restoration visibility 0.5 (restored)"
    assert fusion_text(FusionArgs(enabled=False), restored) == "off"
    # per-image notes never leak into the settings read back from the infotext
    parsed = args_from_infotext({"FaceChain identity": "a", KEY_FUSION: fusion_text(fusion, restored)})
    assert parsed.fusion == fusion
    older = {"FaceChain identity": "a", KEY_FUSION: "0.7 restore=on restore_visibility=0.5 restored"}
    assert args_from_infotext(older).fusion == fusion  # images from before the wording still paste back
    assert detach_state(p) is state and get_state(p) is None
