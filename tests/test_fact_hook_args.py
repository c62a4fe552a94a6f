"""The argument fields that make the FACT hook reachable, and how a generation resolves `conditioning`.

"auto" keeps today's behaviour for identities with a LoRA, and uses FACT for identities without one when FACT's
files are installed; "lora" / "fact" / "lora+fact" do what they say (the LoRA tag leaves the prompt for "fact").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import IDENTITY, ctx_with_identity

from facechain_ext.errors import FaceChainError
from facechain_ext.fact.files import ADAPTER_FILES, DEFAULT_VARIANT, ENCODER_FILE
from facechain_ext.fact_runtime import resolve_conditioning
from facechain_ext.portraits import resolve_generation
from facechain_ext.schemas import parse_args


@pytest.mark.parametrize(
    ("mode", "has_lora", "installed", "expected"),
    [
        ("auto", True, True, (True, False)),
        ("auto", False, True, (False, True)),
        ("auto", False, False, (False, False)),
        ("lora", False, True, (True, False)),
        ("fact", True, False, (False, True)),
        ("lora+fact", True, False, (True, True)),
    ],
)
def test_conditioning_resolution(mode, has_lora, installed, expected):
    assert resolve_conditioning(mode, has_lora=has_lora, fact_installed=installed) == expected


def test_fact_fields_parse_and_bad_values_name_the_field():
    args = parse_args({"identity": "x", "conditioning": "lora+fact", "fact_scale": 0.55, "fact_photos": ["03.png"]})
    assert (args.conditioning, args.fact_scale, args.fact_photos, args.fact_photo_count) == ("lora+fact", 0.55, ["03.png"], 1)
    assert parse_args({"identity": "x"}).conditioning == "auto"
    for field, value in (("conditioning", "faceid"), ("fact_scale", 2.0), ("fact_photo_count", 5)):
        with pytest.raises(FaceChainError) as info:
            parse_args({"identity": "x", field: value})
        assert field in info.value.message


def _with_lora(ctx, tmp_path: Path) -> None:
    lora = tmp_path / "Lora" / "FaceChain" / "obama_v1.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(b"x")
    ctx.identities.add_lora(IDENTITY, {"name": "obama_v1", "path": str(lora), "weight": 0.9})


def _install_fact(ctx) -> None:
    folder = ctx.settings.models_dir / "fact"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (ENCODER_FILE, ADAPTER_FILES[DEFAULT_VARIANT]):
        (folder / name).write_bytes(b"")  # presence is all resolve_generation looks at


def test_auto_uses_fact_only_for_identities_without_a_lora_when_installed(tmp_path, prepared):
    ctx = ctx_with_identity(tmp_path, prepared)
    state = resolve_generation(ctx, parse_args({"identity": IDENTITY}))
    assert not state.wants_fact and any("trigger and phrase only" in c for c in state.comments)
    _install_fact(ctx)
    state = resolve_generation(ctx, parse_args({"identity": IDENTITY}))
    assert state.wants_fact and state.plan.face_lora is None and any("using FACT" in c for c in state.comments)
    _with_lora(ctx, tmp_path)
    state = resolve_generation(ctx, parse_args({"identity": IDENTITY}))
    assert not state.wants_fact and state.plan.face_lora == "obama_v1"


def test_explicit_modes_with_a_lora(tmp_path, prepared):
    ctx = ctx_with_identity(tmp_path, prepared)
    _with_lora(ctx, tmp_path)
    fact = resolve_generation(ctx, parse_args({"identity": IDENTITY, "conditioning": "fact"}))
    assert fact.wants_fact and fact.plan.face_lora is None and fact.lora_name is None and not fact.comments
    both = resolve_generation(ctx, parse_args({"identity": IDENTITY, "conditioning": "lora+fact"}))
    assert both.wants_fact and both.plan.face_lora == "obama_v1"
    lora = resolve_generation(ctx, parse_args({"identity": IDENTITY, "conditioning": "lora"}))
    assert not lora.wants_fact and lora.plan.face_lora == "obama_v1"
