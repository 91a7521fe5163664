"""Shared fixtures: the real data set (skipped when absent) and tiny synthetic data made here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("COVID_XRAY_TEST_DATA", REPO.parent / "shared" / "data" / "coronahack-mini"))
CLASSES_3 = ("normal", "pneumonia", "covid19")

# Tests must never write caches or runs into the user's home or the repo.
os.environ.setdefault("COVID_CORE_CACHE", str(Path(os.environ.get("TMPDIR", "/tmp")) / "covid_core_test_cache"))
os.environ.setdefault("COVID_CORE_RUNS", str(Path(os.environ.get("TMPDIR", "/tmp")) / "covid_core_test_runs"))


# Test files that train models, start servers, browsers or subprocesses, or fuzz: minutes, not seconds.
SLOW_FILES = {"test_browser.py", "test_kill_resume.py", "test_jobs.py", "test_fuzz.py", "test_training.py",
              "test_denoise_training.py", "test_balance.py", "test_ood.py", "test_cards.py",
              "test_site.py"}


def pytest_collection_modifyitems(config, items):
    """Mark each test: ``real_data`` when it uses the real data set, ``slow`` by file (see SLOW_FILES), so that
    ``-m "not slow and not real_data"`` runs the quick set."""
    for item in items:
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)
            item.add_marker(pytest.mark.slow)
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    """tmp_path as the app's world: a weights folder with a tiny checkpoint, runs and cache (app_helpers.app_env)."""
    from app_helpers import app_env

    app_env(tmp_path, monkeypatch)
    return tmp_path


@pytest.fixture
def real_data() -> Path:
    if not (DATA_DIR / "Chest_Xray_Corona_Metadata.csv").is_file():
        pytest.skip(f"real data set not found at {DATA_DIR} (needs ../shared/data/coronahack-mini beside the repo)")
    return DATA_DIR


def synthetic_xray(cls: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """uint8 size x size image whose class is visible: a bright disc at one of three places."""
    rng = np.random.default_rng(seed)
    img = rng.normal(60, 12, (size, size))
    yy, xx = np.mgrid[:size, :size]
    cy, cx = [(size * 0.3, size * 0.3), (size * 0.5, size * 0.7), (size * 0.75, size * 0.35)][cls]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < (size * 0.15) ** 2] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder_dataset(root: Path, per_class_train: int = 12, per_class_test: int = 4, size: int = 48,
                        classes=CLASSES_3) -> Path:
    """A class-per-folder data set (train/<class>/*.png, test/<class>/*.png) of synthetic images."""
    seed = 0
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                Image.fromarray(synthetic_xray(ci % 3, size, seed)).save(d / f"{c}_{i:03d}.png")
    return root


def write_provenance(root: Path, source_of) -> list[str]:
    """provenance.csv for every PNG under ``root``: its source is ``source_of(index, file name)`` (files in
    name order), one patient per film. Returns the file names."""
    import pandas as pd

    files = sorted(p.name for p in root.rglob("*.png"))
    pd.DataFrame({"X_ray_image_name": files, "source": [source_of(i, f) for i, f in enumerate(files)],
                  "patient": [f"p{i}" for i in range(len(files))]}).to_csv(root / "provenance.csv", index=False)
    return files


@pytest.fixture
def folder_dataset(tmp_path) -> Path:
    return make_folder_dataset(tmp_path / "data")


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """A randomly initialised 3-class cnn checkpoint at 64 px with plausible metadata."""
    import torch

    from covid_core.checkpoint import atomic_save, classifier_checkpoint
    from covid_core.models import build_model
    from covid_core.preprocess import PreprocessConfig

    torch.manual_seed(0)
    model = build_model("cnn", 3)
    path = tmp_path / "weights" / "tiny.pt"
    atomic_save(classifier_checkpoint(model, model_name="cnn", target="3class", classes=CLASSES_3,
                                      preprocess=PreprocessConfig(image_size=64), temperature=1.0,
                                      threshold={"class": "covid19", "value": 0.5}), path)
    return path
