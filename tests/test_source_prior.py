"""The source prior (``covid_core.training.source_prior``, ``--source-prior``): training adds log p(class | source),
as the sampler draws the films, to the logits, so a film's loss and gradient count only what its source leaves
unexplained; evaluation reads the network alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import write_provenance
from covid_core.training.adversary import UNKNOWN_SOURCE
from covid_core.training.source_prior import SourcePrior, source_class_shares


def test_shares_follow_the_sampling_weights_with_a_floor_for_classes_a_source_never_has():
    labels = np.array([0, 1, 1, 2, 2, 0])
    codes = np.array([0, 0, 0, 1, 1, UNKNOWN_SOURCE])
    weights = np.array([2.0, 1.0, 1.0, 1.0, 1.0, 50.0])  # source 0: half its sampled mass is class 0
    shares = source_class_shares(weights, labels, codes, n_sources=3, n_classes=3, floor=0.01)
    assert shares[0] == pytest.approx(np.array([0.5, 0.5, 0.01]) / 1.01)
    assert shares[1] == pytest.approx(np.array([0.01, 0.01, 1.0]) / 1.02)
    assert shares[2] == pytest.approx([1 / 3] * 3)  # a source without films: no preference
    assert shares.sum(axis=1) == pytest.approx([1, 1, 1])  # the unknown film's weight counted nowhere


def test_films_of_unknown_source_keep_their_logits_and_the_others_get_the_weighted_log_prior():
    prior = SourcePrior(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]), weight=0.5)
    logits = torch.tensor([[1.0, 2.0, 3.0]] * 3)
    adjusted = prior.adjust(logits, torch.tensor([1, UNKNOWN_SOURCE, 0]))
    assert adjusted[1].tolist() == pytest.approx([1.0, 2.0, 3.0])
    assert adjusted[0].tolist() == pytest.approx([1 + 0.5 * math.log(0.1), 2 + 0.5 * math.log(0.1),
                                                  3 + 0.5 * math.log(0.8)])
    assert adjusted[2].tolist() == pytest.approx([1 + 0.5 * math.log(0.5), 2 + 0.5 * math.log(0.25),
                                                  3 + 0.5 * math.log(0.25)])


def test_a_source_that_never_has_a_class_hardly_pushes_that_classs_logit_down():
    """Without the prior a normal film from a source with no COVID-19 pushes the COVID-19 logit down with a third
    of its gradient; with it, hardly at all: being from that source is not evidence the network must learn."""
    prior = SourcePrior(np.array([[0.495, 0.495, 0.01], [0.2, 0.2, 0.6]]), weight=1.0)
    gradients = {}
    for name, adjust in (("plain", lambda z: z), ("prior", lambda z: prior.adjust(z, torch.tensor([0])))):
        logits = torch.zeros(1, 3, requires_grad=True)
        torch.nn.functional.cross_entropy(adjust(logits), torch.tensor([0])).backward()
        gradients[name] = logits.grad[0, 2].item()  # d loss / d COVID-19 logit: positive pushes it down
    assert gradients["plain"] == pytest.approx(1 / 3)
    assert gradients["prior"] == pytest.approx(0.01)


def test_a_run_with_the_prior_trains_on_what_the_source_leaves_and_refuses_without_two_sources(folder_dataset,
                                                                                                  tmp_path):
    """Each class from its own source: the source explains every label, so a run with the prior starts with
    almost no loss, while the same run without it has to learn the classes from the pixels."""
    from covid_core.errors import ConfigError
    from covid_core.training import TrainConfig, run

    def config(run_id, weight):
        return TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=4, image_size=32,
                           augment=False, val_fraction=0.2, source_prior=weight, run_id=run_id,
                           runs_dir=str(tmp_path / "runs"))

    with pytest.raises(ConfigError, match="at least two sources in provenance.csv"):
        run(config("no-provenance", 1.0), progress=False)

    write_provenance(folder_dataset, lambda i, f: f.split("_")[0])  # the class's name is the source's
    rows = {}
    for name, weight in (("plain", 0.0), ("prior", 1.0)):
        epochs = []
        run(config(name, weight), on_epoch=epochs.append, progress=False)
        rows[name] = epochs[0]["train_loss"]
    assert rows["plain"] > 0.2  # 0.42 here: learnt from the pixels within the epoch
    assert rows["prior"] < 0.05  # 0.008: the source's share of each label was given


def test_the_weight_must_be_from_0_to_1():
    from covid_core.errors import ConfigError
    from covid_core.training import TrainConfig

    with pytest.raises(ConfigError, match="source prior weight"):
        TrainConfig(data="x", source_prior=1.5).validate()
