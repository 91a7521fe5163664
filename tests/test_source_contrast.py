"""Contrast across sources (``covid_core.training.source_contrast``, ``--source-contrast``): features that carry
the class across sources score lower than features that name the source, and a run logs the loss."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import write_provenance
from covid_core.training.adversary import UNKNOWN_SOURCE
from covid_core.training.source_contrast import source_contrast_loss

LABELS = torch.tensor([0, 0, 1, 1])
SOURCES = torch.tensor([0, 1, 0, 1])  # each class in both sources


def test_features_that_carry_the_class_score_lower_than_features_that_name_the_source():
    by_class = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    by_source = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert source_contrast_loss(by_class, LABELS, SOURCES) < source_contrast_loss(by_source, LABELS, SOURCES)


def test_the_loss_is_the_softmax_of_the_one_positive_against_the_other_films():
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    t = 0.5
    # anchor 0: positive film 1 (similarity 1), others films 2 and 3 (similarity 0)
    expected = -(1 / t - math.log(math.exp(1 / t) + 2))
    assert source_contrast_loss(features, LABELS, SOURCES, temperature=t).item() == pytest.approx(expected)


def test_films_without_a_positive_or_source_are_not_anchors():
    features = torch.randn(4, 8, requires_grad=True)
    one_source = source_contrast_loss(features, LABELS, torch.zeros(4, dtype=torch.long))
    unknown = source_contrast_loss(features, LABELS, torch.full((4,), UNKNOWN_SOURCE))
    assert one_source.item() == 0.0 and unknown.item() == 0.0
    one_source.backward()  # still part of the graph, so an objective that adds it can step
    # only films 0 and 1 (class 0, two sources) are anchors; films 2 and 3 are only in their denominators
    only_class_0 = source_contrast_loss(features, LABELS, torch.tensor([0, 1, 0, 0]))
    assert only_class_0.item() > 0


def test_a_run_with_source_contrast_logs_its_loss(folder_dataset, tmp_path):
    from covid_core.runs import RunDir
    from covid_core.training import TrainConfig, run

    write_provenance(folder_dataset, lambda i, f: "a" if i % 2 else "b")
    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=8, image_size=32,
                         augment=False, val_fraction=0.2, source_contrast=0.5, runs_dir=str(tmp_path / "runs"))
    rows = RunDir(run(config, progress=False).parent).metrics()
    assert len(rows) == 1 and rows[0]["contrast_loss"] > 0
