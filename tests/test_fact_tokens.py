"""FACT's face input and the per-identity token cache, on an identity prepared from real photos (dlib backend).

The model is the synthetic full-size release (tests/fact_helpers.py) loaded through the real loader; encoder runs are
counted with a forward hook on the encoder module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from training_helpers import IDENTITY

from facechain_ext.errors import FaceChainError
from facechain_ext.faces.types import Face
from facechain_ext.fact.convert import convert_checkpoint
from facechain_ext.fact.faceinput import (
    NO_HEAD_MASK,
    align_face_for_fact,
    align_identity_photo,
    choose_photos,
    faces_to_tensor,
    identity_photos,
)
from facechain_ext.fact.files import FactFiles, find_fact_files
from facechain_ext.fact.model import load_fact_model
from facechain_ext.fact.tokens import TOKENS_FILE, identity_tokens


class EllipseMasker:
    """A HeadMasker double: the head is the ellipse inscribed in the face box, grown by 10 % (crop pixels)."""

    name = "ellipse"

    def head_mask(self, crop: Image.Image, face: Face) -> np.ndarray:
        x1, y1, x2, y2 = face.bbox
        dx, dy = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
        mask = Image.new("L", crop.size, 0)
        ImageDraw.Draw(mask).ellipse((x1 - dx, y1 - dy, x2 + dx, y2 + dy), fill=1)
        return np.asarray(mask).astype(bool)


@pytest.fixture
def identity_dir(prepared: Path, tmp_path: Path) -> Path:
    target = tmp_path / IDENTITY
    shutil.copytree(prepared / IDENTITY, target)
    return target


@pytest.fixture(scope="module")
def model(fact_release):
    return load_fact_model(find_fact_files(fact_release.models_dir))


def _count_encoder_runs(model) -> list[int]:
    calls: list[int] = []
    model.encoder.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    return calls


def test_photos_are_chosen_by_quality_or_by_name(identity_dir: Path) -> None:
    report = json.loads((identity_dir / "report.json").read_text())
    scores = {p["crop"]: p["quality"]["score"] for p in report["photos"] if p["status"] == "accepted"}
    assert len(scores) >= 3
    ranked = sorted(scores, key=lambda name: (-scores[name], name))
    assert [p.name for p in identity_photos(identity_dir)] == ranked
    assert [p.name for p in choose_photos(identity_dir, 2)] == ranked[:2]
    last = Path(ranked[-1]).stem
    assert [p.name for p in choose_photos(identity_dir, explicit=[last, ranked[0]])] == [ranked[-1], ranked[0]]
    for bad in ({"count": 0}, {"count": 5}, {"explicit": ["99"]}):
        with pytest.raises(FaceChainError) as err:
            choose_photos(identity_dir, **bad)
        assert err.value.code == "invalid_request"


def test_face_input_is_aligned_black_outside_the_head_and_normalised(identity_dir: Path) -> None:
    photo = identity_photos(identity_dir)[0]
    plain = align_identity_photo(photo)
    masked = align_identity_photo(photo, EllipseMasker())
    assert plain.pixels.shape == masked.pixels.shape == (112, 112, 3) and plain.pixels.dtype == np.uint8
    assert not plain.head_mask and masked.head_mask
    # masking only darkens (black source pixels, bilinear weights >= 0) and leaves the face centre untouched
    assert (masked.pixels.astype(int) <= plain.pixels.astype(int)).all()
    np.testing.assert_array_equal(masked.pixels[60:80, 46:66], plain.pixels[60:80, 46:66])  # around the template nose
    corners = masked.pixels[:8, :8].reshape(-1, 3)
    assert (corners == 0).all() and plain.pixels[:8, :8].max() > 0
    tensor = faces_to_tensor([plain.pixels, np.full((112, 112, 3), 255, np.uint8)])
    assert tensor.shape == (2, 3, 112, 112) and tensor.dtype == torch.float32
    assert tensor[1].eq(1.0).all() and tensor.min() >= -1.0
    np.testing.assert_allclose(tensor[0, :, 5, 7].numpy(), plain.pixels[5, 7] / 127.5 - 1.0, rtol=1e-6)
    # an arbitrary image works the same way (face in its own pixel coordinates)
    with Image.open(photo.path) as crop:
        again = align_face_for_fact(crop, photo.face)
    np.testing.assert_array_equal(again.pixels, plain.pixels)


def test_tokens_are_cached_per_photo_and_invalidated_by_photo_mask_and_encoder(
    identity_dir: Path, model, fact_release, tmp_path: Path
) -> None:
    calls = _count_encoder_runs(model)
    first = identity_tokens(model, identity_dir, count=2)
    assert first.tokens.shape == (1, 32, 768) and first.computed == 2 and calls == [2]
    assert first.notes == [NO_HEAD_MASK] and not first.head_mask
    assert (first.tokens[0, :16] - first.tokens[0, 16:]).abs().max() > 1e-3  # two faces, two token sets
    photos = choose_photos(identity_dir, 2)
    direct = model.face_tokens([align_identity_photo(p).pixels for p in photos])
    torch.testing.assert_close(first.tokens, direct)
    calls.clear()  # forget the direct run above
    assert [p.name for p in (identity_dir / TOKENS_FILE).parent.iterdir() if p.name.startswith(".")] == []

    second = identity_tokens(model, identity_dir, count=2)
    assert second.computed == 0 and calls == [] and torch.equal(second.tokens, first.tokens)
    one = identity_tokens(model, identity_dir, explicit=[photos[1].name])
    assert one.computed == 0 and torch.equal(one.tokens, first.tokens[:, 16:])

    image = Image.open(photos[0].path).convert("RGB")  # the best photo changes: only it is encoded again
    image.putpixel((3, 3), (1, 2, 3))
    image.save(photos[0].path)
    changed = identity_tokens(model, identity_dir, count=2)
    assert changed.computed == 1 and calls == [1] and torch.equal(changed.tokens[:, 16:], first.tokens[:, 16:])

    masked = identity_tokens(model, identity_dir, count=2, masker=EllipseMasker())
    assert masked.computed == 2 and masked.head_mask and masked.notes == []

    converted = convert_checkpoint(fact_release.encoder, tmp_path / "enc.safetensors")
    other = load_fact_model(FactFiles(Path(converted["output"]), fact_release.adapter, "maj"))
    other_calls = _count_encoder_runs(other)
    assert identity_tokens(other, identity_dir, count=2).computed == 2 and other_calls == [2]
    assert identity_tokens(model, identity_dir, count=2).computed == 2  # the cache now belongs to the other encoder

    (identity_dir / TOKENS_FILE).write_bytes(b"damaged")
    assert identity_tokens(model, identity_dir, count=1).computed == 1  # a damaged cache is rebuilt, not an error
