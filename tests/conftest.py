"""Shared fixtures: the real photos in ../shared/data and small helpers.

Tests that need the photos fail with a clear message when the folder is missing (never skip silently).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FACECHAIN_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


def require_data() -> Path:
    if not (DATA_DIR / "faces" / "faces.csv").is_file():
        pytest.fail(
            f"Test photos not found at {DATA_DIR}. They live in ../shared/data next to the repository "
            "(or set FACECHAIN_TEST_DATA)."
        )
    return DATA_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def faces_table(data_dir: Path) -> list[dict]:
    """Rows of faces/faces.csv with an absolute `file` path added."""
    with open(data_dir / "faces" / "faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["file"] = str(data_dir / row["path"])  # paths in the CSV are relative to data/
    return rows


@pytest.fixture(scope="session")
def edge_table(data_dir: Path) -> list[dict]:
    with open(data_dir / "edge" / "edge.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["file"] = str(data_dir / row["path"])
    return rows


@pytest.fixture
def fake_host(tmp_path: Path):
    """A freshly started stand-in host (tests/fakehost) with its data folder under tmp_path.

    Call `fake_host.reset_host(data_dir, argv=[...])` again inside a test for other flags (e.g. "--api").
    """
    import fakehost

    fakehost.reset_host(tmp_path / "webui")
    yield fakehost
    fakehost.reset_host(fakehost.ORIGINAL_DATA_DIR)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, faces_table):
    """An identity folder prepared once per test module from real photos (tests/training_helpers.py)."""
    from training_helpers import prepare_identity_folder

    return prepare_identity_folder(tmp_path_factory.mktemp("prepared"), faces_table)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """The tiny host-like ldm model (real ldm UNetModel), built once per test module."""
    from tiny_models import TinyLatentDiffusion

    return TinyLatentDiffusion(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def fake_forge(fake_host, monkeypatch):
    """The stand-in host turned into Forge: tests/fakeforge (`modules_forge`, `backend`) importable on top of fakehost,
    Forge's main thread running. Yields the `modules_forge.main_thread` module. Afterwards the packages are forgotten
    again (`importlib.util.find_spec("modules_forge")` is None), so later tests see A1111."""
    import sys
    import threading

    monkeypatch.syspath_prepend(str(REPO_ROOT / "tests" / "fakeforge"))
    from modules_forge import main_thread

    thread = threading.Thread(target=main_thread.loop, name="forge-main-thread", daemon=True)
    thread.start()
    yield main_thread
    main_thread.stop()
    thread.join(timeout=5)
    for name in [n for n in sys.modules if n.split(".")[0] in ("modules_forge", "backend")]:
        del sys.modules[name]


@pytest.fixture(scope="session")
def fact_release(tmp_path_factory):
    """Synthetic FACT release files with the published keys and shapes (tests/fact_helpers.py), written once."""
    from fact_helpers import write_release

    return write_release(tmp_path_factory.mktemp("fact_models"))


@pytest.fixture(scope="session")
def sd15_unet():
    """The real ldm UNetModel at SD1.5 shapes (~860 M parameters, float32), cheaply filled, built once per session."""
    from fact_hook_helpers import build_unet

    return build_unet()


@pytest.fixture(scope="session")
def sd15_adapter():
    """A real FactAdapter for the 16 SD1.5 sites (~208 M parameters) with open gates, built once per session."""
    from fact_hook_helpers import build_adapter

    return build_adapter()
