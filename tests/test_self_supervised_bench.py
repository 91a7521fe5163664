"""bench/self_supervised.py: SimCLR's views and loss, and that its output is a file training can start from."""

from __future__ import annotations

import importlib
import sys

import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
bench = importlib.import_module("self_supervised")


def test_views_are_crops_of_the_asked_size_in_range_and_differ_between_draws():
    torch.manual_seed(0)
    films = torch.rand(4, 1, 40, 40)
    a, b = bench.crop_views(films, 24), bench.crop_views(films, 24)
    assert a.shape == b.shape == (4, 1, 24, 24)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not torch.allclose(a, b)


def test_the_loss_is_lowest_when_each_view_meets_its_own_partner():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    matched = bench.nt_xent(z, z + 0.01 * torch.randn(16, 8), 0.2)
    shuffled = bench.nt_xent(z, z[torch.randperm(16)], 0.2)
    assert float(matched) < 0.5 < float(shuffled)


def test_a_pretrained_backbone_file_starts_a_classifier(tmp_path):
    """What the script saves (the backbone without its head) is what --pretrained FILE loads."""
    from torch import nn

    from covid_core.models import build_model

    torch.manual_seed(3)
    model = build_model("resnet18", 3)
    model.fc = nn.Identity()  # as the script replaces the head
    torch.save(model.state_dict(), tmp_path / "ssl.pt")
    started = build_model("resnet18", 3, pretrained=str(tmp_path / "ssl.pt"))
    assert torch.equal(started.layer1[0].conv1.weight, model.layer1[0].conv1.weight)
