"""Class and (source, class) group weights, and a training run that samples by group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from covid_core import training
from covid_core.training import classifier as classifier_training
from covid_core.balance import class_weights, group_sample_weights
from covid_core.training import TrainConfig
from conftest import write_provenance


def _shares(weights, keys):
    frame = pd.DataFrame({"w": weights, "k": keys})
    return (frame.groupby("k")["w"].sum() / frame["w"].sum()).to_dict()


def test_class_weights_make_classes_count_equally():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    w = class_weights(labels, 3)[labels]
    assert _shares(w, labels) == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})


def test_group_weights_balance_sources_within_each_class():
    # Class 1 mixes a big paediatric source with a small adult one, as in CoronaHack.
    labels = np.array([0] * 50 + [1] * 80 + [1] * 20 + [2] * 50)
    sources = np.array(["a"] * 50 + ["kids"] * 80 + ["adults"] * 20 + ["c"] * 50)
    w = group_sample_weights(labels, sources)
    assert w.mean() == pytest.approx(1.0)
    assert _shares(w, labels) == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})
    groups = _shares(w, [f"{s}" for s in sources])
    assert groups["kids"] == pytest.approx(groups["adults"]) == pytest.approx(1 / 6)
    assert w[sources == "adults"][0] == pytest.approx(4 * w[sources == "kids"][0])


def test_group_weights_are_capped_for_tiny_groups():
    labels = np.array([0] * 99 + [0] + [1] * 100)
    sources = np.array(["big"] * 99 + ["single"] + ["b"] * 100)
    w = group_sample_weights(labels, sources, cap=5.0)
    assert w.max() == pytest.approx(5.0)  # uncapped, the single image would weigh 50
    assert w.mean() == pytest.approx(1.0)
    assert np.all(w[sources == "big"] < w[sources == "single"])


def test_one_source_is_plain_class_balancing():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    w = group_sample_weights(labels, np.array(["unknown"] * 100))
    expected = class_weights(labels, 3)[labels]
    assert w == pytest.approx(expected / expected.mean())


def test_training_with_group_balance_samples_by_provenance(folder_dataset, tmp_path, monkeypatch):
    write_provenance(folder_dataset, lambda i, f: "rare" if f.startswith("pneumonia_00") and int(f[-7:-4]) < 3
                     else "common")
    seen = {}

    def spy(labels, sources, **kw):
        out = group_sample_weights(labels, sources, **kw)
        seen.update(sources=list(sources), weights=out)
        return out

    monkeypatch.setattr(classifier_training, "group_sample_weights", spy)
    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=4, image_size=32,
                         augment=False, val_fraction=0.2, balance="group", runs_dir=str(tmp_path / "runs"))
    best = training.run(config, progress=False)
    assert best.is_file()
    sources, weights = np.array(seen["sources"]), seen["weights"]
    assert "rare" in sources and "common" in sources
    assert weights[sources == "rare"].min() > weights[sources == "common"].max()


def test_unknown_balance_is_refused():
    from covid_core.errors import ConfigError

    with pytest.raises(ConfigError, match="balance must be one of: loss, sampler, group, none"):
        TrainConfig(data="x", balance="magic").validate()


def test_weighted_draws_are_shared_by_torchrun_processes():
    """Under torchrun each process takes its own share of one weighted epoch, the same on a resumed run."""
    import torch

    from covid_core.training.distributed import WeightedShardSampler

    weights = np.r_[np.full(90, 1.0), np.full(10, 9.0)]  # 10 rare films weigh as much as 90 common ones
    ranks = [WeightedShardSampler(weights, rank, 2, seed=3) for rank in range(2)]
    for sampler in ranks:
        sampler.set_epoch(1)
    first, second = (list(sampler) for sampler in ranks)
    assert len(first) == len(second) == len(ranks[0]) == 50  # equal shares, or the processes would wait forever
    epoch = torch.tensor([i for pair in zip(first, second) for i in pair])
    assert 0.35 < (epoch >= 90).float().mean() < 0.65  # the rare films drawn about as often as the common ones
    again = WeightedShardSampler(weights, 0, 2, seed=3)
    again.set_epoch(1)
    assert list(again) == first  # a resumed run draws the same epoch
    again.set_epoch(2)
    assert list(again) != first
