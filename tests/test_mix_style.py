"""MixStyle across sources (``covid_core.training.mix_style``, ``--mix-style``): a chosen film's early feature maps
keep their layout and take part of the channel statistics of a film from another source; films without such a
partner, and every film in evaluation, are left as they are."""

from __future__ import annotations

import pytest
import torch

from conftest import write_provenance
from covid_core.models import build_model, get_spec
from covid_core.training.adversary import UNKNOWN_SOURCE
from covid_core.training.mix_style import MixStyle


def _stats(x):
    return x.mean(dim=(2, 3)), x.std(dim=(2, 3))


def test_a_chosen_film_keeps_its_layout_and_moves_towards_the_other_sources_style():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    x[1] = x[1] * 5 + 10  # film 1 (source 1) has another style
    mixer = MixStyle([], share=1.0)
    mixer.beta = torch.distributions.Beta(torch.tensor(2.0), torch.tensor(2.0))  # lam away from 0 and 1
    out = mixer.mix(x, torch.tensor([0, 1]))
    mean_in, std_in = _stats(x)
    mean_out, std_out = _stats(out)
    assert not torch.allclose(out, x)
    # every channel of film 0 moved from its own statistics towards film 1's, and film 1's towards film 0's
    assert ((mean_out[0] - mean_in[0]) * (mean_in[1] - mean_in[0]) > 0).all()
    assert ((std_out[0] - std_in[0]) * (std_in[1] - std_in[0]) > 0).all()
    assert ((mean_out[1] - mean_in[1]) * (mean_in[0] - mean_in[1]) > 0).all()
    standardised = lambda t: (t - t.mean(dim=(2, 3), keepdim=True)) / t.std(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(standardised(out), standardised(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sources", [[0, 0, 0, 0], [UNKNOWN_SOURCE] * 4])
def test_films_without_a_partner_from_another_known_source_are_unchanged(sources):
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(MixStyle([], share=1.0).mix(x, torch.tensor(sources)), x)


def test_share_zero_changes_nothing():
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(MixStyle([], share=0.0).mix(x, torch.tensor([0, 1, 0, 1])), x)


@pytest.mark.parametrize("name", ["cnn", "resnet18"])
def test_hooks_mix_only_in_training_mode_and_only_inside_a_batch(name):
    torch.manual_seed(0)
    model = build_model(name, 3)
    x, sources = torch.rand(4, 1, 48, 48), torch.tensor([0, 1, 0, 1])
    model.train()
    with torch.no_grad():
        torch.manual_seed(1)
        plain = model(x)
        mixer = MixStyle(get_spec(name).style_layers(model), share=1.0)
        torch.manual_seed(1)
        outside = model(x)  # no batch given: nothing to mix with
        with mixer.batch(sources):
            mixed = model(x)
        model.eval()
        evaluated = model(x)
        with mixer.batch(sources):
            evaluated_inside = model(x)
        mixer.remove()
    torch.testing.assert_close(outside, plain)
    assert not torch.allclose(mixed, plain, atol=1e-4)
    torch.testing.assert_close(evaluated_inside, evaluated)


def test_a_run_with_mix_style_mixes_at_every_training_step(folder_dataset, tmp_path, monkeypatch):
    from covid_core.training import TrainConfig, run
    from covid_core.training import mix_style

    calls = []
    original = mix_style.MixStyle.mix
    monkeypatch.setattr(mix_style.MixStyle, "mix", lambda self, x, s: calls.append(len(x)) or original(self, x, s))
    write_provenance(folder_dataset, lambda i, f: "a" if i % 2 else "b")
    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=8, image_size=32,
                         augment=False, val_fraction=0.2, mix_style=0.5, runs_dir=str(tmp_path / "runs"))
    checkpoint = torch.load(run(config, progress=False), weights_only=True)
    assert checkpoint["train_config"]["mix_style"] == 0.5
    # two style layers per training step; validation scoring (evaluation mode) does not mix
    assert calls and len(calls) % 2 == 0 and max(calls) <= 8
