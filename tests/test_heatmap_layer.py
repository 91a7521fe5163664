"""The heatmap a reader sees: the registry's heatmap layer and default method, and the bench that chose them
(bench/heatmap_methods.py, docs/heatmaps.md)."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO
from covid_core.checkpoint import Classifier, load_classifier
from covid_core.datasets import load_dataset
from covid_core.decode import decode_image
from covid_core.explain import DEFAULT_METHOD, explain_batch
from covid_core.preprocess import PreprocessConfig

sys.path.insert(0, str(REPO / "bench"))
bench = importlib.import_module("heatmap_methods")


class TopLeftReader(nn.Module):
    """Two logits: the mean square of the input's top-left quadrant (its contrast) less 4, and 0: p = 0.5 for the
    checkerboard below, unsaturated. Nothing else moves its output."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(4.0))

    def forward(self, x):
        half = x.shape[-1] // 2
        score = x[:, 0, :half, :half].square().mean(dim=(1, 2)) - self.offset
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_least_relevant_first_removes_only_the_least_highlighted_pixels():
    classifier = Classifier(model=TopLeftReader().eval(), spec=None, classes=("a", "b"), target="covid",
                            preprocess=PreprocessConfig(image_size=32))
    pixels = np.zeros((1, 32, 32), np.uint8)
    pixels[0, ::2, ::2] = pixels[0, 1::2, 1::2] = 255  # a checkerboard: a removed pixel, imputed from its
    # neighbours, comes back grey, which lowers the contrast the model reads
    cams = np.zeros((1, 32, 32), np.float32)
    cams[0, :16, :16] = 1.0  # the map shows the quadrant the model reads: a quarter of the pixels
    lerf = bench.least_relevant_drop(classifier, pixels, cams, [0])
    # the 20% least highlighted pixels all lie outside the quadrant: the model's output cannot move
    assert lerf.shape == (1,) and abs(float(lerf[0])) < 1e-6
    inverse = bench.least_relevant_drop(classifier, pixels, 1.0 - cams, [0])
    assert float(inverse[0]) > 0.05  # a map that shows the rest: its least highlighted pixels are the quadrant's


def test_the_bench_prints_a_row_per_method_and_layer(tmp_path, folder_dataset, tiny_checkpoint):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "heatmap_methods.py"), "--model", str(tiny_checkpoint), "--data",
         str(folder_dataset), "--per-class", "2", "--methods", "hirescam", "gradcam", "--layers", "registry",
         "features.3"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    overall, by_class_text = result.stdout.split("By predicted class")
    rows = [line for line in overall.splitlines() if line.startswith(("| registry", "| features.3"))]
    # the tiny cnn at 64 px: the registry's heatmap layer (one stage before the last) has 8x8 cells, the last 4x4
    assert [r.split("|")[1:3] for r in rows] == [[" registry (8x8) ", " hirescam "], [" registry (8x8) ", " gradcam "],
                                                [" features.3 (4x4) ", " hirescam "],
                                                [" features.3 (4x4) ", " gradcam "]]
    for row in rows:
        figures = [cell.strip().rstrip("%") for cell in row.split("|")[3:-1]]
        assert all(np.isfinite(float(f)) for f in figures)
    # then a row per map by predicted class, whose films add up to the films explained (2 drawn per class)
    by_class = by_class_text.splitlines()[3:]
    assert len(by_class) == 4
    for row in by_class:
        cells = [c.strip() for c in row.split("|")[3:-1]]
        assert sum(int(c.split(",")[0]) for c in cells if c) == 6


def test_an_unknown_layer_is_named(tmp_path, folder_dataset, tiny_checkpoint):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "heatmap_methods.py"), "--model", str(tiny_checkpoint), "--data",
         str(folder_dataset), "--layers", "layer9"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2 and "--layers" in result.stderr and "layer9" in result.stderr


def test_the_shipped_resnet18s_heatmap_shows_more_of_what_it_uses_than_grad_cam_at_its_last_stage(real_data):
    """On TEST films, hiding the 20% most highlighted pixels of the default map lowers the explained class's
    probability more than hiding those of Grad-CAM at the last stage, the map shown before; and the map is finer."""
    classifier = load_classifier(REPO / "weights" / "resnet18.pt")
    table = load_dataset(real_data).for_target(classifier.target)
    test = table[table["split"] == "test"]
    paths = [p for _, group in sorted(test.groupby("label")) for p in sorted(group["path"])[::12][:10]]
    images = [decode_image(p) for p in paths]
    spec = classifier.spec
    last_stage = dataclasses.replace(classifier, spec=dataclasses.replace(spec, heatmap_layer=spec.feature_layer))
    torch.manual_seed(0)
    shown = explain_batch(classifier, images)
    torch.manual_seed(0)
    before = explain_batch(last_stage, images, "gradcam")
    assert {e.method for e in shown} == {DEFAULT_METHOD}
    shown_drop = np.mean([e.faithfulness for e in shown])
    before_drop = np.mean([e.faithfulness for e in before])
    assert shown_drop > before_drop + 0.03, (shown_drop, before_drop)
    assert np.mean([e.thorax_share for e in shown]) > np.mean([e.thorax_share for e in before])
    # the grid the map is drawn from at 160 px: layer3's 10x10 cells, not layer4's 5x5
    assert (bench.grid_of(classifier), bench.grid_of(last_stage)) == ("10x10", "5x5")
