"""Shared fixtures for the app tests: a tiny classifier checkpoint and tiny synthetic X-rays."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from covid_core.checkpoint import atomic_save, classifier_checkpoint
from covid_core.models import build_model
from covid_core.preprocess import PreprocessConfig

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app" / "streamlit_app.py")
CLASSES = ("normal", "pneumonia", "covid19")


def fake_metrics() -> dict:
    """Plausible TEST metrics of a 3-class model (made up for the tests, never shown as real)."""
    per_class = {c: {"sensitivity": 0.8, "specificity": 0.9, "ppv": 0.7, "auc": 0.9, "support": 10} for c in CLASSES}
    within = {"kermany_normal_vs_pneumonia": {"description": "Kermany children: normal vs pneumonia", "auc": 0.95,
                                              "auc_low": 0.81, "auc_high": 0.99, "n_negative": 10, "n_positive": 10,
                                              "positive_called": 0.9}}
    test = {"n": 30, "accuracy": 0.8, "macro_auc": 0.9, "macro_auc_low": 0.82, "macro_auc_high": 0.96, "ece": 0.05,
            "shortcuts": {"within_source": within, "source_probe": None}, "classes": list(CLASSES),
            "per_class": per_class,
            "confusion_matrix": [[8, 1, 1], [1, 8, 1], [0, 2, 8]],
            "per_source": {"kermany": {"n": 20, "accuracy": 0.85, "true": {"normal": 10, "pneumonia": 10, "covid19": 0},
                                       "predicted": {"normal": 10, "pneumonia": 9, "covid19": 1},
                                       "confusion": {"normal": {"normal": 10, "pneumonia": 0, "covid19": 0},
                                                     "pneumonia": {"normal": 0, "pneumonia": 9, "covid19": 1}}},
                           "cohen": {"n": 10, "accuracy": 0.8, "true": {"normal": 0, "pneumonia": 0, "covid19": 10},
                                     "predicted": {"normal": 0, "pneumonia": 2, "covid19": 8}}}}
    roc = {c: {"fpr": [0.0, 0.1, 0.3, 1.0], "tpr": [0.0, 0.7, 0.9, 1.0], "thresholds": [1.0, 0.7, 0.4, 0.0]}
           for c in CLASSES}
    return {"val": dict(test), "test": test, "test_roc": roc}


def make_checkpoint(path: Path, seed: int = 0, covid_threshold: float = 0.4, ood_threshold: float = 1e12) -> Path:
    torch.manual_seed(seed)
    model = build_model("cnn", len(CLASSES))
    ckpt = classifier_checkpoint(
        model, model_name="cnn", target="3class", classes=CLASSES, preprocess=PreprocessConfig(image_size=64),
        metrics=fake_metrics(), temperature=1.0,
        threshold={"class": "covid19", "value": covid_threshold, "rule": "test fixture", "val_sensitivity": 0.95,
                   "val_specificity": 0.7, "test": {"sensitivity": 0.9, "specificity": 0.75, "ppv": 9 / 14, "npv": 15 / 16,
                                                     "tp": 9, "fp": 5, "fn": 1, "tn": 15}},
        # Tensors in the metadata, as in every real checkpoint (they once broke Streamlit's widget comparisons).
        ood={"method": "mahalanobis", "means": torch.zeros(len(CLASSES), 256), "precision": torch.eye(256),
             "threshold": ood_threshold, "percentile": 98.0},
        data_fingerprint="feedc0ffee123456", class_counts={"train": {"normal": 10}},
        training_data={"name": "fixture-films", "layout": "folders", "sources": {"cohen": 10, "kermany": 20},
                       "unreadable_n": 1, "unreadable": ["broken.png"]},
        created="2025-01-01T00:00:00+0000", train_config={"model": "cnn", "epochs": 1, "lr": 0.001, "batch_size": 8},
        training_time_s=1.0, hardware="test")
    ckpt["card"] = {"normal_vs_pneumonia": {"n": 20, "auc": 0.93, "accuracy": 0.9},
                    "thorax_share": {"normal": 0.6, "pneumonia": 0.41, "covid19": 0.55}, "thorax_n": 10,
                    "ood_check": {"non_xray_n": 40, "non_xray_flagged": 0.975, "transformed_xray_n": 80,
                                  "transformed_xray_flagged": 0.9, "test_n": 30, "test_flagged": 0.033}}
    atomic_save(ckpt, path)
    return path


def make_pneumonia_checkpoint(path: Path, seed: int = 0, ood_threshold: float = 1e12) -> Path:
    """A randomly initialised normal/pneumonia cnn checkpoint (``--target pneumonia``: no COVID-19 class) at 64 px."""
    torch.manual_seed(seed)
    model = build_model("cnn", 2)
    atomic_save(classifier_checkpoint(
        model, model_name="cnn", target="pneumonia", classes=("normal", "pneumonia"),
        preprocess=PreprocessConfig(image_size=64), temperature=1.0, threshold={},
        ood={"method": "mahalanobis", "means": torch.zeros(2, 256), "precision": torch.eye(256),
             "threshold": ood_threshold, "percentile": 98.0},
        training_data={"name": "fixture-films", "layout": "folders", "sources": {"kermany": 20}},
        created="2025-01-01T00:00:00+0000", train_config={"model": "cnn", "epochs": 1}), path)
    return path


def xray_array(size: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 SxS: a dark background with two bright 'lungs' shaped blobs and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = np.exp(-(((xx - 0.5) / 0.35) ** 2 + ((yy - 0.5) / 0.45) ** 2))
    lungs = np.exp(-(((xx - 0.33) / 0.1) ** 2 + ((yy - 0.5) / 0.25) ** 2)) + \
        np.exp(-(((xx - 0.67) / 0.1) ** 2 + ((yy - 0.5) / 0.25) ** 2))
    img = 0.8 * body - 0.4 * lungs + 0.05 * rng.standard_normal((size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def site_film(cls: str, i: int, k: int) -> np.ndarray:
    """uint8 64x64 film ``i`` of class ``cls``, the ``k``-th class of a hospital's labelled set: xray_array, with an
    opacity in one lung when ``cls`` is covid19, which a head on the features can learn."""
    img = xray_array(64, seed=100 * k + i).astype(np.int16)
    if cls == "covid19":
        img[20:44, 12:30] += 90
    return np.clip(img, 0, 255).astype(np.uint8)


def make_site_folder(root: Path, per_class: int = 14, classes=("normal", "covid19")) -> Path:
    """A hospital's labelled films as class folders straight in ``root``: ``root/<class>/<class><i>.png``."""
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            (root / cls / f"{cls}{i}.png").write_bytes(png_bytes(site_film(cls, i, k)))
    return root


def make_folders_data(root: Path, per_class: int = 3, size: int = 48, classes=("normal", "pneumonia", "covid")) -> Path:
    """train/<class>/*.png + test/<class>/*.png of tiny distinct synthetic X-rays."""
    for s, split in enumerate(("train", "test")):
        for k, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(xray_array(size, seed=1000 * s + 10 * k + i)).save(d / f"{split}{i}.png")
    return root


def app_env(tmp_path: Path, monkeypatch, broken: bool = False, covid_threshold: float = 0.4,
            ood_threshold: float = 1e12) -> Path:
    """A tmp weights folder with the tiny checkpoint (and a broken file), runs and cache in tmp."""
    weights = tmp_path / "weights"
    weights.mkdir()
    make_checkpoint(weights / "tiny_cnn.pt", covid_threshold=covid_threshold, ood_threshold=ood_threshold)
    if broken:
        (weights / "broken.pt").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("COVID_XRAY_WEIGHTS", str(weights))
    monkeypatch.setenv("COVID_CORE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COVID_XRAY_DATA", raising=False)
    monkeypatch.setenv("COVID_XRAY_DATA_ROOTS", str(tmp_path))  # the Train form accepts folders under tmp_path only
    return weights
