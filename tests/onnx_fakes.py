"""Tiny ONNX graphs with exactly the input/output signatures of insightface's buffalo_l models.

insightface's `model_zoo` recognises each model's role from those signatures, so a folder of these files goes through
the real loading, routing, pre-processing and decoding code. Every output is a deterministic function of the input
whose decoded meaning is known in closed form (see `FakeSpec`), so tests can predict boxes, keypoints, landmarks,
gender, age and embeddings exactly.

  det_10g.onnx    input.1 [1,3,H,W] -> 9 outputs: scores [N,1], boxes [N,4], keypoints [N,10] for strides 8/16/32,
                  2 anchors per cell. Only stride 32 fires: its score is 0.5 + 0.4 * (mean brightness of the 32x32
                  cell, normalised to [-1, 1]) - a white 32x32 cell scores 0.9, black 0.1. Box and keypoint distances
                  are constants (in stride units), so a white cell at anchor (ax, ay) decodes to a known face.
  2d106det.onnx   data [1,3,192,192] -> fc1 [1,212]: constant normalised landmarks (+ 0 * input mean).
  genderage.onnx  data [1,3,96,96] -> fc1 [1,3]: [m, -m, AGE/100] with m the crop's mean (dark crop -> male).
  w600k_r50.onnx  input.1 [1,3,112,112] -> 683 [1,512]: 8x8 average pooling, flatten (192), fixed random matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
DET_STRIDES = (8, 16, 32)
DET_OUTPUT_NAMES = ("448", "471", "494", "451", "474", "497", "454", "477", "500")  # det_10g's real names


@dataclass(frozen=True)
class FakeSpec:
    box_dist: tuple[float, float, float, float] = (2.0, 2.5, 3.0, 3.5)  # left, top, right, bottom in stride units
    kps_dist: tuple[float, ...] = (-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.75, 1.25, 0.75, 1.25)  # (dx, dy) x 5
    landmarks: np.ndarray = field(
        default_factory=lambda: np.random.default_rng(106).uniform(-0.9, 0.9, size=(106, 2)).astype(np.float32)
    )
    age: float = 37.0
    embed_seed: int = 512

    def recognition_matrix(self) -> np.ndarray:
        return np.random.default_rng(self.embed_seed).standard_normal((192, 512)).astype(np.float32)

    def expected_detection(self, anchor: tuple[float, float], det_scale: float) -> tuple[np.ndarray, np.ndarray]:
        """(bbox x1y1x2y2, kps (5,2)) in original-image pixels for a firing stride-32 cell at `anchor` (det pixels)."""
        ax, ay = anchor
        d = np.array(self.box_dist) * 32
        bbox = np.array([ax - d[0], ay - d[1], ax + d[2], ay + d[3]]) / det_scale
        kps = (np.array([ax, ay]) + np.array(self.kps_dist).reshape(5, 2) * 32) / det_scale
        return bbox, kps

    def expected_landmarks(self, bbox: np.ndarray) -> np.ndarray:
        """insightface's landmark decoding: crop of 1.5 x the box's long side around its centre, outputs in [-1, 1]."""
        x1, y1, x2, y2 = bbox
        centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        return self.landmarks * (max(x2 - x1, y2 - y1) * 1.5 / 2) + centre


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facechain-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _head(prefix: str, pooled: str, bias: np.ndarray, weight: float, width: int) -> tuple[list, list, str]:
    """1x1 conv of the pooled brightness -> (cells*anchors, width) rows, anchor-major like SCRFD's outputs."""
    channels = bias.size
    w = np.full((channels, 1, 1, 1), weight, dtype=np.float32)
    inits = [
        _const(f"{prefix}_w", w),
        _const(f"{prefix}_b", bias),
        numpy_helper.from_array(np.array([-1, width], dtype=np.int64), f"{prefix}_shape"),
    ]
    nodes = [
        helper.make_node("Conv", [pooled, f"{prefix}_w", f"{prefix}_b"], [f"{prefix}_conv"], name=f"{prefix}_conv"),
        helper.make_node("Transpose", [f"{prefix}_conv"], [f"{prefix}_nhwc"], perm=[0, 2, 3, 1], name=f"{prefix}_nhwc"),
        helper.make_node("Reshape", [f"{prefix}_nhwc", f"{prefix}_shape"], [f"{prefix}_out"], name=f"{prefix}_reshape"),
    ]
    return nodes, inits, f"{prefix}_out"


def detection_graph(spec: FakeSpec) -> onnx.GraphProto:
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["gray"], axes=[1], keepdims=1, name="gray")]
    inits: list = []
    outputs: dict[str, str] = {}
    for stride in DET_STRIDES:
        nodes.append(
            helper.make_node(
                "AveragePool",
                ["gray"],
                [f"pool{stride}"],
                kernel_shape=[stride, stride],
                strides=[stride, stride],
                name=f"pool{stride}",
            )
        )
        fires = stride == 32
        # score = 0.5 + 0.4 * v / v_white, v = normalised brightness (white 255 -> (255 - 127.5) / 128)
        score_bias = np.full(2, 0.5 if fires else 0.0, dtype=np.float32)
        score_weight = 0.4 / ((255 - 127.5) / 128.0) if fires else 0.0
        for kind, bias, weight, width in (
            ("score", score_bias, score_weight, 1),
            ("bbox", np.tile(np.array(spec.box_dist, dtype=np.float32), 2), 0.0, 4),
            ("kps", np.tile(np.array(spec.kps_dist, dtype=np.float32), 2), 0.0, 10),
        ):
            head_nodes, head_inits, out = _head(f"{kind}{stride}", f"pool{stride}", bias, weight, width)
            nodes += head_nodes
            inits += head_inits
            outputs[f"{kind}{stride}"] = out
    order = [f"{k}{s}" for k in ("score", "bbox", "kps") for s in DET_STRIDES]
    widths = {"score": 1, "bbox": 4, "kps": 10}
    graph_outputs = []
    for name, key in zip(DET_OUTPUT_NAMES, order, strict=True):
        nodes.append(helper.make_node("Identity", [outputs[key]], [name], name=f"out_{name}"))
        width = widths[key.rstrip("0123456789")]
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{key}", width]))
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])
    return helper.make_graph(nodes, "fake_det_10g", [inp], graph_outputs, initializer=inits)


def _mean_plus_constant(
    name: str, size: int, out_dim: int, constant: np.ndarray, gain: np.ndarray, out_name: str
) -> onnx.GraphProto:
    """out = gain * mean(input) + constant: a (1, out_dim) output that depends on the input."""
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])
    nodes = [
        helper.make_node("ReduceMean", ["data"], ["m"], axes=[1, 2, 3], keepdims=0, name="mean"),  # shape (1,)
        helper.make_node("Unsqueeze", ["m", "axis1"], ["m2"], name="as_column"),  # (1, 1)
        helper.make_node("MatMul", ["m2", "gain"], ["scaled"], name="gain"),  # (1, out_dim)
        helper.make_node("Add", ["scaled", "constant"], [out_name], name="offset"),
    ]
    inits = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        _const("gain", gain.reshape(1, out_dim)),
        _const("constant", constant.reshape(1, out_dim)),
    ]
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, out_dim])
    return helper.make_graph(nodes, name, [inp], [out], initializer=inits)


def recognition_graph(spec: FakeSpec) -> onnx.GraphProto:
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "proj"], ["683"], name="project"),
    ]
    out = helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])
    return helper.make_graph(nodes, "fake_w600k_r50", [inp], [out], initializer=[_const("proj", spec.recognition_matrix())])


def expected_embedding(aligned_rgb_112: np.ndarray, spec: FakeSpec) -> np.ndarray:
    """What the fake recogniser gives for an aligned RGB crop, with ArcFaceONNX's (x - 127.5) / 127.5 input."""
    blob = (aligned_rgb_112.astype(np.float32).transpose(2, 0, 1) - 127.5) / 127.5
    pooled = blob.reshape(3, 8, 14, 8, 14).mean(axis=(2, 4)).reshape(-1)
    raw = pooled @ spec.recognition_matrix()
    return raw / np.linalg.norm(raw)


def write_buffalo_pack(folder: Path, spec: FakeSpec = FakeSpec()) -> Path:
    """Write the four fake buffalo_l files into `folder` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    _save(detection_graph(spec), folder / "det_10g.onnx")
    _save(
        _mean_plus_constant("fake_2d106det", 192, 212, spec.landmarks.reshape(-1), np.zeros(212, np.float32), "fc1"),
        folder / "2d106det.onnx",
    )
    _save(
        _mean_plus_constant("fake_genderage", 96, 3, np.array([0.0, 0.0, spec.age / 100.0]), np.array([1.0, -1.0, 0.0]), "fc1"),
        folder / "genderage.onnx",
    )
    _save(recognition_graph(spec), folder / "w600k_r50.onnx")
    return folder
