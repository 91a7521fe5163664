"""bench/unseen_source_batchnorm.py: AdaBN re-estimates batch-norm statistics from the given films, nothing else."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))  # the bench script imports its sibling shortcut_ablation
adabn = importlib.import_module("unseen_source_batchnorm")


def test_batchnorm_statistics_come_from_the_given_films_and_weights_stay():
    from covid_core.models import build_model
    from covid_core.preprocess import PreprocessConfig

    torch.manual_seed(0)
    model = build_model("resnet18", 3)
    config = PreprocessConfig(image_size=32)
    rng = np.random.default_rng(0)
    films = rng.integers(100, 200, size=(10, 32, 32), dtype=np.uint8)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = {}
    first.register_forward_pre_hook(lambda m, args: seen.setdefault("x", []).append(args[0].detach()))

    layers = adabn.adapt_batchnorm(model, films, config, batch_size=4)  # 3 batches: 4, 4, 2 films

    assert layers == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not model.training
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())
    assert int(first.num_batches_tracked) == 3
    # a cumulative average over the three batches' channel means (each batch counts the same)
    batch_means = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen["x"]])
    assert torch.allclose(first.running_mean, batch_means.mean(0), atol=1e-5)
    again = first.running_mean.clone()
    adabn.adapt_batchnorm(model, films, config, batch_size=4)  # statistics are reset, not accumulated across calls
    assert torch.allclose(first.running_mean, again, atol=1e-6)
