"""The domain-adversarial source head: its gradient reaches the features reversed, it needs two sources, and a
run trained with it saves a plain classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covid_core.errors import ConfigError
from covid_core.training import TrainConfig, run
from covid_core.training.adversary import SourceAdversary, source_codes
from conftest import write_provenance


def test_the_features_get_the_source_heads_gradient_reversed_and_scaled():
    torch.manual_seed(0)
    adversary = SourceAdversary(n_features=6, n_classes=3, n_sources=2, weight=0.7)
    features = torch.randn(5, 6, requires_grad=True)
    labels, sources = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([0, 1, 1, 0, -100])
    adversary.loss(features, labels, sources, progress=1.0).backward()
    reversed_grad = features.grad.clone()

    plain = features.detach().clone().requires_grad_(True)
    logits = adversary.head(torch.cat([plain, torch.nn.functional.one_hot(labels, 3).float()], 1))
    torch.nn.functional.cross_entropy(logits, sources, ignore_index=-100).backward()
    assert torch.allclose(reversed_grad, -adversary.ramp(1.0) * plain.grad, atol=1e-6)
    assert adversary.ramp(0.0) == 0.0 and 0.69 < adversary.ramp(1.0) <= 0.7  # DANN's ramp from 0 to the weight


def test_unknown_sources_are_ignored_and_one_source_is_refused():
    codes, names = source_codes(np.array(["nih", "kermany", "unknown", "nih"]))
    assert names == ["kermany", "nih"] and codes.tolist() == [1, 0, -100, 1]
    with pytest.raises(ConfigError, match="at least two sources"):
        source_codes(np.array(["nih", "unknown"]))


@pytest.mark.slow
def test_a_run_with_the_adversary_logs_its_loss_and_saves_a_plain_classifier(folder_dataset, tmp_path):
    from covid_core.checkpoint import load_classifier
    from covid_core.runs import RunDir

    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=2, batch_size=4, image_size=32,
                         augment=False, val_fraction=0.2, source_adversary=1.0, runs_dir=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="at least two sources in provenance.csv"):
        run(config, progress=False)  # no provenance.csv: every source is unknown

    write_provenance(folder_dataset, lambda i, f: "a" if i % 2 else "b")
    config.run_id = "with-adversary"
    best = run(config, progress=False)
    rows = RunDir(best.parent).metrics()
    assert len(rows) == 2 and all(r["source_loss"] > 0 for r in rows)
    clf = load_classifier(best)  # strict load into the plain architecture: no adversary weights in it
    assert not any("head." in k and "classifier" not in k for k in clf.model.state_dict())
