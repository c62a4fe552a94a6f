"""The production face backend: insightface's buffalo_l pack (SCRFD det_10g, 2d106det, genderage, ArcFace w600k_r50).

Each ONNX file in the pack folder goes through insightface's own `model_zoo.get_model`, which recognises the model's
role from its input/output shapes exactly as `FaceAnalysis` does; we keep one model per role. onnxruntime and
insightface are imported only when the models are first needed, never at module import.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FaceChainError
from .types import Face

logger = logging.getLogger(__name__)

# Cosine threshold for ArcFace w600k_r50 embeddings. NOT calibrated here: the buffalo_l weights cannot be downloaded
# in our test environment. insightface's old deploy/test.py rejected squared L2 distances above 1.24 between unit
# embeddings (= cosine 0.38) and its recent examples use 0.5; 0.40 sits at the permissive end of that range.
# Re-measure on ../shared/data/faces (as tests/test_faces_dlib.py does for dlib) once the pack is available.
INSIGHTFACE_THRESHOLD = 0.40

SCRFD_INPUT_SIDE = 640  # insightface's largest default detection size (model_zoo/scrfd.py DEFAULT_DET_SIZES)
# SCRFD's smallest anchors are 16 px at stride 8 (the SCRFD paper, arXiv:2105.04714, trains for faces down to ~10 px);
# 16 px is where its WIDER FACE hard-set recall still holds.
SCRFD_MIN_FACE = 16.0

# Preferred execution providers, best first: CUDA, then the platform accelerators, then CPU.
PROVIDER_PRIORITY = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider")
WANTED_TASKS = ("detection", "landmark_2d_106", "genderage", "recognition")
# buffalo_l also ships 1k3d68.onnx (3D 68-point landmarks). We never use it, so we do not pay for its 137 MB session.
SKIPPED_FILES = frozenset({"1k3d68.onnx"})


def choose_providers(available: Sequence[str]) -> list[str]:
    """The best available provider plus the CPU fallback, e.g. ['CUDAExecutionProvider', 'CPUExecutionProvider']."""
    names = list(dict.fromkeys(str(p) for p in available))
    for provider in PROVIDER_PRIORITY:
        if provider in names:
            fallback = ["CPUExecutionProvider"] if provider != "CPUExecutionProvider" and "CPUExecutionProvider" in names else []
            return [provider, *fallback]
    if names:  # an unusual custom build: take what it offers
        return [names[0]]
    raise FaceChainError("backend_unavailable", "The ONNX runtime offers no way to run models here (no execution provider); reinstall onnxruntime.", backend="insightface")


@dataclass
class _Pack:
    models: dict[str, Any]  # insightface model objects by task name
    providers: list[str]
    files: dict[str, str] = field(default_factory=dict)  # task -> file name
    face_type: Any = None  # insightface.app.common.Face, the dict-like record its models fill in


class InsightFaceBackend:
    """Models load once per backend object (lock-protected); ORT sessions are safe to run from several threads."""

    name = "insightface"
    embedding_dim = 512

    def __init__(
        self,
        pack_dir: Path,
        *,
        det_size: tuple[int, int] | None = None,
        det_thresh: float = 0.5,
        providers: Sequence[str] | None = None,
        threshold: float = INSIGHTFACE_THRESHOLD,
    ) -> None:
        self.pack_dir = Path(pack_dir)
        self.det_size = det_size  # None: insightface's own multi-scale default (128 and 640 px)
        self.det_thresh = det_thresh
        self.threshold = threshold
        self._requested_providers = None if providers is None else list(providers)
        self._lock = threading.Lock()
        self._pack: _Pack | None = None

    # -- loading ---------------------------------------------------------------------------------------------------
    def models(self) -> _Pack:
        with self._lock:
            if self._pack is None:
                self._pack = self._load()
            return self._pack

    def _load(self) -> _Pack:
        try:
            import onnxruntime
            from insightface.app.common import Face as InsightFace
            from insightface.model_zoo import model_zoo
        except ImportError as exc:
            raise FaceChainError(
                "backend_unavailable",
                f"The insightface backend needs the insightface and onnxruntime packages ({exc}).",
                backend="insightface",
            ) from exc
        onnxruntime.set_default_logger_severity(3)  # ORT's per-node warnings are noise for users
        providers = self._requested_providers or choose_providers(onnxruntime.get_available_providers())
        pack = _Pack(models={}, providers=providers, face_type=InsightFace)
        for path in sorted(self.pack_dir.glob("*.onnx")):
            if path.name in SKIPPED_FILES:
                continue
            model = model_zoo.get_model(str(path), providers=providers)
            task = getattr(model, "taskname", None)
            if task in WANTED_TASKS and task not in pack.models:
                pack.models[task] = model
                pack.files[task] = path.name
        missing = [t for t in ("detection", "recognition") if t not in pack.models]
        if missing:
            raise FaceChainError(
                "backend_unavailable",
                f"No {' or '.join(missing)} model found in {self.pack_dir}; put the buffalo_l files there.",
                backend="insightface",
                path=str(self.pack_dir),
            )
        self._prepare(pack)
        print(f"[FaceChain] insightface models from {self.pack_dir} run on {providers[0]}", flush=True)
        logger.info("insightface %s on providers %s", sorted(pack.files.values()), providers)
        return pack

    def _prepare(self, pack: _Pack) -> None:
        ctx_id = 0  # the providers are already chosen; insightface's ctx_id < 0 would force CPU again
        for task, model in pack.models.items():
            if task == "detection":
                kwargs: dict[str, Any] = {"det_thresh": self.det_thresh}
                if self.det_size is not None:
                    kwargs["input_size"] = self.det_size
                model.prepare(ctx_id, **kwargs)
            else:
                model.prepare(ctx_id)

    @property
    def max_input_side(self) -> int:
        """SCRFD letterboxes its input into det_size (insightface's default 640 x 640)."""
        return int(max(self.det_size)) if self.det_size else SCRFD_INPUT_SIDE

    min_detectable_face = SCRFD_MIN_FACE

    def info(self) -> dict[str, Any]:
        pack = self._pack
        return {
            "backend": self.name,
            "model_dir": str(self.pack_dir),
            "provider": None if pack is None else pack.providers[0],
            "providers": None if pack is None else list(pack.providers),
            "models": None if pack is None else dict(pack.files),
        }

    # -- the backend interface -------------------------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, *, embed: bool = True, min_face_size: float | None = None) -> list[Face]:
        # SCRFD always runs at its fixed 640 px input: the `min_face_size` hint saves nothing here and is not used
        # (FaceAnalyzer's tile pass covers small faces in large photos).
        pack = self.models()
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # insightface models take OpenCV's BGR order
        bboxes, kpss = pack.models["detection"].detect(bgr, max_num=0)
        faces = []
        for i in range(bboxes.shape[0]):
            record = pack.face_type(bbox=bboxes[i, :4], kps=None if kpss is None else kpss[i], det_score=bboxes[i, 4])
            for task in ("landmark_2d_106", "genderage"):
                if task in pack.models:
                    pack.models[task].get(bgr, record)
            if embed and record.kps is not None:
                pack.models["recognition"].get(bgr, record)
            faces.append(self._to_face(record))
        return faces

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        pack = self.models()
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        record = pack.face_type(bbox=np.asarray(face.bbox, dtype=np.float32), kps=np.asarray(face.kps, dtype=np.float32))
        pack.models["recognition"].get(bgr, record)
        return np.asarray(record.normed_embedding, dtype=np.float32)

    def _to_face(self, record: Any) -> Face:
        """insightface's dict-like Face -> ours (same keypoint order: eyes, nose, mouth corners as seen in the image)."""
        if record.kps is None:
            raise FaceChainError("unsupported_model", f"The detection model in {self.pack_dir} gives no keypoints.")
        gender = record.get("gender")
        landmarks = record.get("landmark_2d_106")
        embedding = record.normed_embedding
        return Face(
            bbox=tuple(float(v) for v in record.bbox[:4]),  # type: ignore[arg-type]
            score=float(record.det_score),
            kps=np.asarray(record.kps, dtype=np.float32).reshape(5, 2),
            backend=self.name,
            embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
            landmarks=None if landmarks is None else np.asarray(landmarks, dtype=np.float32),
            gender=None if gender is None else ("male" if int(gender) == 1 else "female"),
            age=None if record.get("age") is None else float(record.get("age")),
        )
