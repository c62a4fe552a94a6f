"""FaceChain's training-photo preparation with open components, plus the checks FaceChain lacked.

Per photo: load (EXIF, formats) -> upright orientation -> detection -> multi-face policy -> size check ->
eye-line levelling -> FaceChain crop -> optional head mask -> quality. Then over the set: near-duplicates,
photos of a different person, caption phrase by vote, and the best photo. Every rejection names the photo.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import FaceChainError
from ..faces.align import roll_degrees
from ..faces.types import Face
from ..imaging import ImageSource, load_image
from . import geometry as geo
from .captions import caption, choose_phrase
from .consistency import Candidate, find_duplicates, find_strangers, thumbnail
from .headmask import apply_head_mask
from .options import PrepOptions
from .quality import assess
from .report import ACCEPTED, PhotoResult, PreparationReport

if TYPE_CHECKING:
    from ..faces.analyzer import FaceAnalyzer

log = logging.getLogger(__name__)

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def prepare_photos(
    photos: Sequence[tuple[str, ImageSource]],
    analyzer: FaceAnalyzer,
    options: PrepOptions = PrepOptions(),
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> PreparationReport:
    """Prepare `(name, image)` pairs as training crops; raises FaceChainError('no_usable_photos') if none survive.

    `progress(done, total, text)` is called after each photo (jobs and the UI show it).
    """
    if not photos:
        raise FaceChainError("invalid_request", "No photos were given: upload at least one photo of the person.")
    results: list[PhotoResult] = []
    candidates: list[Candidate] = []
    for index, (name, source) in enumerate(photos):
        result, candidate = prepare_one(index, str(name), source, analyzer, options)
        results.append(result)
        log.info("photo %d/%d %s", index + 1, len(photos), result.message if result.code else f"{name}: face found")
        if progress is not None:
            progress(index + 1, len(photos), f"Prepared {index + 1} of {len(photos)} photos")
        if candidate is not None:
            candidates.append(candidate)
    reject_duplicates(results, candidates, options)
    if options.check_identity:
        reject_strangers(results, candidates, analyzer.threshold)
    return finish_report(results, analyzer.name, options)


def prepare_one(
    index: int, name: str, source: ImageSource, analyzer: FaceAnalyzer, options: PrepOptions
) -> tuple[PhotoResult, Candidate | None]:
    """Run the per-photo steps; the result is provisionally accepted when a Candidate comes back."""
    result = PhotoResult(path=name)
    try:
        image = load_image(source, name)
    except FaceChainError as err:
        result.reject(err.code, err.message)
        return result, None
    # embed only the face we keep (group photos have many); every face >= min_face_size is searched for
    upright = analyzer.detect_upright(image, embed=False, min_face_size=options.min_face_size)
    problem = face_problem(name, upright.faces, options)
    if problem is not None:
        result.reject(*problem)
        return result, None
    face = upright.faces[0]
    leveled, to_upright, roll = level_face(upright.image, face, analyzer, options)
    if leveled.embedding is None:
        leveled = replace(leveled, embedding=analyzer.embed(upright.image, face))
    crop, face_in_crop = crop_face(upright.image, leveled, to_upright, options)
    if options.head_mask and options.head_masker is not None:
        crop = apply_head_mask(crop, options.head_masker.head_mask(crop, face_in_crop))
    quality = assess(face_in_crop, crop, face.long_side, options.face_side_in_crop)
    result.status, result.crop, result.face = ACCEPTED, crop, face_in_crop
    result.quality = quality.to_dict()
    result.rotation = (float(upright.rotation) + roll + 180.0) % 360.0 - 180.0  # signed, counter-clockwise
    result.message = f"{name}: accepted (quality {quality.score:.2f})."
    embedding = face_in_crop.embedding
    photo = upright.image
    return result, Candidate(index, name, embedding, thumbnail(photo), quality.score, photo.width / photo.height)


def face_problem(name: str, faces: Sequence[Face], options: PrepOptions) -> tuple[str, str] | None:
    """(code, message) when the detected faces make the photo unusable, else None."""
    if not faces:
        return "no_face", f"{name}: no face found (also tried the photo rotated by 90, 180 and 270 degrees)."
    if len(faces) > 1 and faces[0].area < options.multi_face_ratio * faces[1].area:
        ratio = faces[0].area / max(faces[1].area, 1e-6)
        return "multiple_faces", (
            f"{name}: {len(faces)} faces and the largest is only {ratio:.1f}x the area of the next "
            f"(a group photo is used only when one face is at least {options.multi_face_ratio:g}x larger); "
            "crop the photo to the person."
        )
    size = faces[0].long_side
    if size < options.min_face_size:
        return "face_too_small", (
            f"{name}: the face is only {size:.0f} px across (at least {options.min_face_size} px are needed); "
            "use a closer or larger photo."
        )
    return None


def level_face(image: Image.Image, face: Face, analyzer: FaceAnalyzer, options: PrepOptions) -> tuple[Face, np.ndarray, float]:
    """(face in the levelled frame, photo -> levelled-frame matrix, roll in degrees) for a tilted face.

    Like FaceChain, the photo is rotated about the face by the eye-line angle and the face is detected again,
    so the crop is built from an upright box. Only a white-padded region around the face is resampled.
    """
    roll = roll_degrees(face.kps)
    if abs(roll) < options.roll_tolerance:
        return face, IDENTITY, 0.0
    to_upright = geo.rotation_about(face.center, roll)
    side = 1.5 * options.crop_scale * face.long_side  # covers the final crop at any angle
    cx, cy = face.center
    to_region = geo.translate_scale(side / 2.0 - cx, side / 2.0 - cy)
    region = geo.warp(image, geo.compose(to_region, to_upright), math.ceil(side))
    found = [f for f in analyzer.detect(region) if 0.5 < f.long_side / face.long_side < 2.0]
    if not found:
        log.info("face not re-detected after levelling by %.1f degrees; using the rotated keypoints", roll)
        return geo.map_face(face, to_upright), to_upright, roll
    nearest = min(found, key=lambda f: math.dist(f.center, (side / 2.0, side / 2.0)))
    return geo.map_face(nearest, geo.invert(to_region)), to_upright, roll


def crop_face(image: Image.Image, face: Face, to_upright: np.ndarray, options: PrepOptions) -> tuple[Image.Image, Face]:
    """FaceChain's square crop at `options.resolution`, and `face` (levelled frame) mapped into it."""
    to_crop, side = geo.crop_matrix(face.center, face.long_side, options.crop_scale, options.face_center_y)
    # Rotate/cut near the photo's own scale (at most 2x the output, so huge photos stay cheap), then one
    # antialiased resize; a photo far larger than that is shrunk first so the warp never skips pixels.
    pixels = min(max(options.resolution, math.ceil(side)), 2 * options.resolution)
    to_pixels = geo.compose(geo.translate_scale(0.0, 0.0, pixels / side), to_crop)
    source, from_source = geo.prescale(image, pixels / side)
    warped = geo.warp(source, geo.compose(geo.compose(to_pixels, to_upright), from_source), pixels)
    crop = geo.resize_square(warped, options.resolution)
    to_final = geo.compose(geo.translate_scale(0.0, 0.0, options.resolution / side), to_crop)
    return crop, geo.map_face(face, to_final)


def reject_duplicates(results: list[PhotoResult], candidates: list[Candidate], options: PrepOptions) -> None:
    dupes = find_duplicates(candidates, options.duplicate_embedding_similarity, options.duplicate_image_similarity)
    for index, (kept, emb, img) in dupes.items():
        results[index].reject(
            "duplicate",
            f"{results[index].path}: a near-duplicate of {results[kept].path} (face similarity {emb:.3f}, "
            f"image similarity {img:.3f}); kept the better-quality one.",
        )
    candidates[:] = [c for c in candidates if c.index not in dupes]


def reject_strangers(results: list[PhotoResult], candidates: list[Candidate], threshold: float) -> None:
    reference, strangers = find_strangers(candidates, threshold)
    for index, similarity in strangers.items():
        results[index].reject(
            "different_person",
            f"{results[index].path}: shows a different person than the other photos (similarity {similarity:.3f} "
            f"to the majority, below the same-person threshold {threshold:.3f}; reference photo {results[reference].path}).",
        )
    candidates[:] = [c for c in candidates if c.index not in strangers]


# rejection code -> how many photos had it, in words, for the no_usable_photos summary ("2 without a face, 1 unreadable")
REJECTION_WORDS = {
    "no_face": "without a face", "multiple_faces": "with several faces", "face_too_small": "with too small a face",
    "duplicate": "duplicate", "different_person": "of a different person", "unreadable_image": "unreadable",
    "image_too_large": "too large", "unsupported_format": "in an unsupported format",
}


def finish_report(results: list[PhotoResult], backend: str, options: PrepOptions) -> PreparationReport:
    accepted = [r for r in results if r.accepted]
    if not accepted:
        counts: dict[str, int] = {}
        for r in results:
            counts[r.code or "?"] = counts.get(r.code or "?", 0) + 1
        summary = ", ".join(f"{n} {REJECTION_WORDS.get(code, code.replace('_', ' '))}" for code, n in sorted(counts.items()))
        raise FaceChainError(
            "no_usable_photos",
            f"None of the {len(results)} photos can be used for training ({summary}). " + " ".join(r.message for r in results),
            photos=[r.to_dict() for r in results],
            counts=counts,
        )
    phrase = choose_phrase(
        [r.face for r in accepted if r.face is not None], options.child_age, options.mature_age, options.phrase
    )
    text = caption(options.trigger, phrase.text)
    for r in accepted:
        r.caption = text
    best = max(accepted, key=lambda r: r.score)
    notes = [n for n in (phrase.note, background_note(options)) if n]
    return PreparationReport(
        photos=results,
        trigger=options.trigger,
        phrase=phrase.text,
        phrase_source=phrase.source,
        best_photo=best.path,
        backend=backend,
        background="masked" if options.head_mask and options.head_masker is not None else "kept",
        resolution=options.resolution,
        notes=notes,
    )


def background_note(options: PrepOptions) -> str:
    if options.head_mask and options.head_masker is not None:
        return f"head mask applied with {options.head_masker.name}: everything but the head was painted white"
    if options.head_mask:
        return (
            "background kept: a head mask was requested but no face-parsing model is installed "
            "(put face_parsing_bisenet.onnx in <FaceChain models dir>/parsing)"
        )
    return "background kept (head mask off)"
