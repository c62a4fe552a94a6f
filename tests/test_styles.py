"""Style presets: every shipped preset is valid and neutral; user folders load, override and report broken files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from facechain_ext.errors import FaceChainError
from facechain_ext.styles import BUILTIN_STYLES_DIR, IDENTITY_PLACEHOLDER, StyleLibrary, load_style_file, parse_style

# Words that would hard-code who the person is; the identity's phrase supplies that (FaceChain's users complained).
IDENTITY_WORDS = re.compile(
    r"\b(man|men|woman|women|boy|girl|male|female|guy|lady|gentleman|he|she|his|her|asian|african|european|caucasian|"
    r"white skin|black skin|latina|latino|chinese woman|korean woman|japanese woman|handsome|beautiful)\b",
    re.IGNORECASE,
)


def minimal(**changes):
    data = {"id": "my_style", "name": "My style", "prompt": "portrait of {identity}, soft light"}
    data.update(changes)
    return data


def write(folder: Path, name: str, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_all_shipped_presets_are_valid_and_need_no_download():
    files = sorted(BUILTIN_STYLES_DIR.glob("*.json"))
    assert len(files) >= 12
    library = StyleLibrary()
    assert library.errors == {}
    assert len(library.list()) == len(files)
    for path in files:
        style = load_style_file(path)
        assert style.style_lora is None, f"{path.name} needs a download"
        assert style.prompt.count(IDENTITY_PLACEHOLDER) == 1, f"{path.name}: the identity must be placed once"
        assert style.recommended.steps and style.recommended.width and style.recommended.height


def test_shipped_prompts_name_no_gender_or_ethnicity():
    for style in StyleLibrary().list():
        for text in (style.prompt, style.name, style.description):
            found = IDENTITY_WORDS.findall(text)
            assert not found, f"{style.id}: {found} in {text!r}"


def test_shipped_presets_cover_several_cultures_of_traditional_dress():
    traditional = [s for s in StyleLibrary().list() if "traditional" in s.tags]
    assert len(traditional) >= 3
    assert len({tag for s in traditional for tag in s.tags if tag not in ("traditional", "culture")}) >= 3


def test_broken_user_files_are_reported_by_name_and_the_rest_loads(tmp_path):
    user = tmp_path / "user_styles"
    write(user, "good_one.json", minimal(id="good_one"))
    write(user, "not_json.json", "{ this is not json")
    write(user, "missing_prompt.json", {"id": "missing_prompt", "name": "x"})
    write(user, "typo_field.json", minimal(id="typo_field", negativ_prompt="x"))
    write(user, "wrong_id.json", minimal(id="another_id"))
    library = StyleLibrary([user])
    errors = library.errors
    assert set(Path(p).name for p in errors) == {"not_json.json", "missing_prompt.json", "typo_field.json", "wrong_id.json"}
    assert "prompt" in errors[str(user / "missing_prompt.json")]
    assert "negativ_prompt" in errors[str(user / "typo_field.json")]
    assert "another_id" in errors[str(user / "wrong_id.json")]
    assert library.get("good_one").name == "My style"
    assert "studio_headshot" in library.ids()  # built-ins still there


def test_user_style_overrides_builtin_and_reload_picks_up_new_files(tmp_path):
    user = tmp_path / "styles"
    write(user, "studio_headshot.json", minimal(id="studio_headshot", name="My headshot"))
    library = StyleLibrary([user])
    assert library.get("studio_headshot").name == "My headshot"
    write(user, "later.json", minimal(id="later"))
    with pytest.raises(FaceChainError):
        library.get("later")
    library.reload()
    assert library.get("later").id == "later"


def test_missing_user_folder_is_reported():
    library = StyleLibrary(["/nonexistent/facechain/styles"])
    assert library.errors == {"/nonexistent/facechain/styles": "styles folder does not exist"}


def test_unknown_style_is_style_not_found_with_404():
    with pytest.raises(FaceChainError) as info:
        StyleLibrary().get("no_such_style")
    assert info.value.code == "style_not_found" and info.value.http_status == 404
    assert "studio_headshot" in info.value.context["available"]


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"id": "Bad Id"}, "id:"),
        ({"prompt": "  "}, "prompt: must not be empty"),
        ({"prompt": "photo of {person}"}, "unknown placeholder {person}"),
        ({"prompt": "{identity} and {identity}"}, "at most once"),
        ({"negative_prompt": "ugly {identity}"}, "unknown placeholder"),
        ({"prompt": "photo <lora:film:0.5>"}, "style_lora"),
        ({"recommended": {"width": 500}}, "multiple of 8"),
        ({"recommended": {"steps": 0}}, "steps (in recommended) must be at least 1"),
        ({"style_multiplier": 3}, "style_multiplier"),
        ({"preview": "../../etc/passwd.png"}, "preview"),
        ({"style_lora": {}}, "exactly one"),
        ({"style_lora": {"file": "film.safetensors", "manifest": {"source": "url", "sha256": "0" * 64}}}, "exactly one"),
        ({"style_lora": {"file": "/abs/film.safetensors"}}, "relative path"),
        ({"style_lora": {"manifest": {"source": "huggingface", "sha256": "a" * 64}}}, "'repo' and 'file'"),
        ({"style_lora": {"manifest": {"source": "url", "url": "http://x/y.safetensors", "sha256": "a" * 64}}}, "https"),
        ({"style_lora": {"manifest": {"source": "url", "url": "https://x/y.safetensors", "sha256": "xyz"}}}, "sha256"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_invalid_styles_name_the_field(changes, fragment):
    with pytest.raises(FaceChainError) as info:
        parse_style(minimal(**changes), what="my_style.json")
    assert info.value.code == "invalid_style"
    assert fragment in info.value.message
    assert info.value.message.startswith("my_style.json")


def test_style_lora_file_and_manifest_forms():
    local = parse_style(minimal(style_lora={"file": "styles/Film Grain.safetensors"}))
    assert local.style_lora.prompt_name == "Film Grain"
    remote = parse_style(minimal(style_lora={
        "manifest": {"source": "huggingface", "repo": "someone/loras", "file": "sub/watercolor.safetensors", "sha256": "b" * 64},
        "name": "watercolor_v2",
    }))
    assert remote.style_lora.local_file == "FaceChain/styles/watercolor.safetensors"
    assert remote.style_lora.prompt_name == "watercolor_v2"


def test_one_precedence_rule_for_recommended_settings():
    """Set value > style recommendation > fallback, for the route (host defaults) and the tab (its controls)."""
    from facechain_ext.styles import apply_recommended

    style = parse_style({"id": "tall", "name": "Tall", "prompt": "a portrait of {identity}",
                         "recommended": {"width": 512, "height": 768, "cfg_scale": 6.5, "sampler": "DPM++ 2M"}})
    fallback = {"steps": 20, "cfg_scale": 7.0, "width": 512, "height": 512}
    fields = apply_recommended({"cfg_scale": 9.0, "steps": None}, style, fallback)
    assert (fields["cfg_scale"], fields["height"], fields["steps"], fields["sampler_name"]) == (9.0, 768, 20, "DPM++ 2M")
    assert fields["scheduler"] is None  # neither set, recommended nor in the fallback
    assert apply_recommended({}, None, fallback)["height"] == 512
    with pytest.raises(FaceChainError) as err:
        apply_recommended({"width": 500}, style, fallback)
    assert err.value.code == "invalid_request" and err.value.context["field"] == "width"
