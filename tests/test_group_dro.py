"""Group DRO (``covid_core.training.group_dro``, ``--group-dro``): the weight of a (source, class) group grows with
its loss, the objective is the weighted sum of the group losses, and a run keeps the weights for a resume."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import write_provenance
from covid_core.training.adversary import UNKNOWN_SOURCE
from covid_core.training.group_dro import GroupDRO


def _logits(right: list[bool]) -> torch.Tensor:
    """Two-class logits that give the true class (class 0) 0.9 where ``right``, 0.1 elsewhere."""
    p = torch.tensor([0.9 if r else 0.1 for r in right])
    return torch.stack([torch.log(p), torch.log(1 - p)], dim=1)


def test_the_group_with_the_higher_loss_gains_weight_and_the_objective_is_the_weighted_sum():
    dro = GroupDRO(n_sources=2, n_classes=2, step=0.5)
    labels = torch.zeros(4, dtype=torch.long)
    sources = torch.tensor([0, 0, 1, 1])  # source 0's films are called right, source 1's wrong
    objective = dro.loss(_logits([True, True, False, False]), labels, sources)
    easy, hard = -math.log(0.9), -math.log(0.1)
    groups = dro.groups(labels, sources).tolist()
    assert groups == [0, 0, 2, 2]  # group = source * classes + class
    w = dro.weights
    assert w.sum().item() == pytest.approx(1.0)
    # six groups (two sources and "unknown", two classes), 1/6 each before the step
    raised = [math.exp(0.5 * easy), 1, math.exp(0.5 * hard), 1, 1, 1]
    assert w.tolist() == pytest.approx([r / sum(raised) for r in raised])
    assert objective.item() == pytest.approx(w[0].item() * easy + w[2].item() * hard)

    for _ in range(20):  # the hard group keeps gaining
        dro.loss(_logits([True, True, False, False]), labels, sources)
    assert dro.weights[2] > 0.9


def test_films_of_unknown_source_have_a_group_per_class_of_their_own():
    dro = GroupDRO(n_sources=2, n_classes=3, step=0.1)
    groups = dro.groups(torch.tensor([0, 2, 1]), torch.tensor([UNKNOWN_SOURCE, UNKNOWN_SOURCE, 1]))
    assert groups.tolist() == [6, 8, 4]


def test_the_gradient_weights_each_film_by_its_groups_weight_over_its_groups_size():
    dro = GroupDRO(n_sources=2, n_classes=2, step=0.0)  # step 0: the weights stay uniform
    logits = torch.zeros(3, 2, requires_grad=True)
    dro.loss(logits, torch.zeros(3, dtype=torch.long), torch.tensor([0, 0, 1])).backward()
    # each group weighs 1/6; source 0's group has two films, source 1's one
    assert logits.grad[:, 0].tolist() == pytest.approx([-0.5 / 6 / 2, -0.5 / 6 / 2, -0.5 / 6])


def test_a_run_with_group_dro_keeps_its_weights_and_refuses_without_two_sources(folder_dataset, tmp_path):
    from covid_core.errors import ConfigError
    from covid_core.training import TrainConfig, run

    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=4, image_size=32,
                         augment=False, val_fraction=0.2, group_dro=0.1, runs_dir=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="at least two sources in provenance.csv"):
        run(config, progress=False)  # no provenance.csv: no film has a known source

    write_provenance(folder_dataset, lambda i, f: "a" if i % 2 else "b")
    config.run_id = "with-group-dro"
    best = run(config, progress=False)
    weights = torch.load(best.parent / "last.pt", weights_only=True)["group_dro"]["weights"]
    assert weights.shape == (9,) and weights.sum().item() == pytest.approx(1.0)
    assert weights[:6].std() > 0  # the known groups' weights moved apart from the uniform start
    assert weights[6:].tolist() == pytest.approx([weights[6].item()] * 3)  # no unknown film: moved together


def test_the_step_must_be_from_0_to_1():
    from covid_core.errors import ConfigError
    from covid_core.training import TrainConfig

    with pytest.raises(ConfigError, match="group DRO step"):
        TrainConfig(data="x", group_dro=2.0).validate()


def test_a_resumed_group_dro_run_continues_with_its_weights(folder_dataset, tmp_path):
    """Stopped after its first epoch and resumed, a Group DRO run ends as the uninterrupted one does: the group
    weights come back from last.pt instead of starting uniform again."""
    from covid_core.training import TrainConfig, run

    write_provenance(folder_dataset, lambda i, f: "a" if i % 2 else "b")

    def config(run_id):
        return TrainConfig(data=str(folder_dataset), model="cnn", epochs=2, batch_size=4, image_size=32,
                           augment=False, val_fraction=0.2, group_dro=0.5, run_id=run_id,
                           runs_dir=str(tmp_path / "runs"))

    whole, resumed = [], []
    best_whole = run(config("whole"), on_epoch=whole.append, progress=False)
    best_resumed = run(config("resumed"), on_epoch=lambda r: resumed.append(r) or False, progress=False)
    after_one = torch.load(best_resumed.parent / "last.pt", weights_only=True)["group_dro"]["weights"]
    assert len(resumed) == 1 and after_one.std() > 0  # stopped after epoch 1, its weights already moved
    run(TrainConfig(), on_epoch=resumed.append, progress=False, resume=str(best_resumed.parent))

    def final(best):
        return torch.load(best.parent / "last.pt", weights_only=True)["group_dro"]["weights"]

    assert final(best_resumed).tolist() == pytest.approx(final(best_whole).tolist(), rel=1e-5)
    assert resumed[1]["train_loss"] == pytest.approx(whole[1]["train_loss"], rel=1e-5)
