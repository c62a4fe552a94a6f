"""A face cut by the image border (issue 7 §2): boxes are clipped, and detect -> prepare -> fuse -> rank all work.

The photos are real ones cropped so the face touches the edge: the detector's own box then extends past the image
(dlib gave [-22.7, -22.7, 164.3, 164.6] for the 194 x 194 crop below).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.dlib_backend import DlibBackend
from facechain_ext.fusion import fuse_face
from facechain_ext.imaging import load_image
from facechain_ext.prep import PrepOptions, prepare_photos
from facechain_ext.ranking import score_images

FACE = "faces/obama/face_recognition_obama.jpg"
REFERENCE = "faces/obama/face_recognition_obama2.jpg"
OTHER_PERSON = "faces/biden/face_recognition_knn_train_biden.jpg"


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(DlibBackend())


@pytest.fixture(scope="module")
def border_photos(data_dir: Path, analyzer: FaceAnalyzer) -> dict[str, Image.Image]:
    photo = load_image(data_dir / FACE)
    x1, y1, x2, y2 = (int(v) for v in analyzer.detect(photo, embed=False)[0].bbox)
    return {
        # the face fills the picture and is cut at the top and left (the 224 x 224 case)
        "corner": photo.crop((x1 + 20, y1 + 20, x2 - 10, y2 - 10)),
        # a quarter of the face width cut off by the left edge, the rest of the photo kept
        "left_edge": photo.crop((x1 + (x2 - x1) // 4, 0, photo.width, photo.height)),
    }


def test_boxes_are_clipped_to_the_image(border_photos, analyzer):
    for name, image in border_photos.items():
        raw = analyzer.backend.detect(np.asarray(image), embed=False)
        assert len(raw) == 1 and min(raw[0].bbox[:2]) < 0, name  # the detector's box sticks out
        faces = analyzer.detect(image)
        assert len(faces) == 1, name
        x1, y1, x2, y2 = faces[0].bbox
        assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height, (name, faces[0].bbox)
        assert x1 == 0.0 and faces[0].kps[:, 0].min() > 0  # clipped box; keypoints stay where the eyes are
        assert faces[0].embedding is not None


def test_border_faces_are_prepared_centred_like_any_other(border_photos, analyzer):
    options = PrepOptions(check_identity=False, min_face_size=64)
    report = prepare_photos(list(border_photos.items()), analyzer, options)
    for photo in report.photos:
        assert photo.status == "accepted", photo.message
        redetected = analyzer.detect(photo.crop)
        assert len(redetected) == 1, photo.path
        cx, cy = redetected[0].center
        # FaceChain's crop puts the face box centre at (0.5, 0.435) x 512; the clipped box keeps the visible face there
        assert abs(cx - 256) < 0.12 * 512 and abs(cy - 223) < 0.12 * 512, (photo.path, cx, cy)
        assert np.isfinite(photo.quality["score"]) and 0 < photo.quality["score"] <= 1


def test_border_faces_fuse_as_target_and_as_reference(border_photos, analyzer, data_dir):
    reference = load_image(data_dir / REFERENCE)
    other = load_image(data_dir / OTHER_PERSON)
    for name, image in border_photos.items():
        target = np.asarray(image)
        result = fuse_face(image, reference, analyzer, strength=1.0)
        assert result.applied, (name, result.reason)
        fused = np.asarray(result.image)
        assert fused.shape == target.shape
        assert np.array_equal(fused[~result.mask], target[~result.mask])  # nothing outside the face mask moved
        x1, y1, x2, y2 = result.region
        assert x1 == 0 and 0 <= y1 < y2 <= image.height and x2 <= image.width  # the mask reaches the border, no further
        as_reference = fuse_face(other, image, analyzer, strength=1.0)
        assert as_reference.applied, (name, as_reference.reason)
        mine = analyzer.detect(reference)[0].embedding
        before = analyzer.similarity(analyzer.detect(other)[0].embedding, mine)
        after = analyzer.similarity(analyzer.detect(as_reference.image)[0].embedding, mine)
        assert after > before, (name, before, after)


def test_ranking_measures_the_visible_face(border_photos, analyzer, data_dir):
    reference = analyzer.detect(load_image(data_dir / REFERENCE))[0].embedding
    images = list(border_photos.values())
    scores = score_images(images, reference, analyzer)
    for image, score in zip(images, scores, strict=True):
        assert score.score is not None and score.score >= analyzer.threshold
        face = analyzer.detect(image)[0]
        assert score.face_ratio == pytest.approx(face.long_side / min(image.size))
        assert score.face_ratio <= max(image.size) / min(image.size)
