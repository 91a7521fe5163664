"""Registry-driven model tests: every registered model builds, runs and round-trips a checkpoint."""

from __future__ import annotations

import pytest
import torch

from covid_core.checkpoint import atomic_save, classifier_checkpoint, load_classifier
from covid_core.errors import CheckpointError, ConfigError, PretrainedWeightsUnavailable
from covid_core.models import SPATIAL_GRID, build_model, get_spec, list_models, model_features
from covid_core.preprocess import PreprocessConfig


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_on_one_channel_and_names_its_layers(name):
    torch.manual_seed(0)
    model = build_model(name, 3).eval()
    x = torch.randn(2, 1, 64, 64)
    layer = get_spec(name).feature_layer(model)
    assert isinstance(layer, torch.nn.Module) and any(True for _ in layer.parameters())
    heatmap_layer = get_spec(name).heatmap_layer(model)
    assert any(heatmap_layer is m for m in model.modules()) and any(True for _ in heatmap_layer.parameters())
    with torch.no_grad():
        logits, feats = model_features(model, x, spatial_layer=layer)
        plain = model(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert torch.equal(logits, plain)  # the hooks leave the output alone
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert feats["penultimate"].shape == (2, head.in_features)
    # the named layer is the last feature map: SPATIAL_GRID^2 cells of its channels
    assert feats["spatial"].shape[0] == 2 and feats["spatial"].shape[1] % SPATIAL_GRID ** 2 == 0
    assert not layer._forward_hooks and not head._forward_hooks  # hooks removed


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_round_trip_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(1)
    model = build_model(name, 2).eval()
    path = tmp_path / f"{name}.pt"
    atomic_save(classifier_checkpoint(model, model_name=name, target="covid", classes=("negative", "positive"),
                                      preprocess=PreprocessConfig(image_size=64)), path)
    clf = load_classifier(path)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), clf.model(x), atol=1e-6)
    assert clf.classes == ("negative", "positive") and clf.preprocess.image_size == 64


def test_unknown_model_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'resnet19'; choose one of: cnn, resnet18, resnet50, densenet121"):
        build_model("resnet19", 3)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    model = build_model("cnn", 3)
    ckpt = classifier_checkpoint(model, model_name="resnet18", target="3class",
                                 classes=("normal", "pneumonia", "covid19"), preprocess=PreprocessConfig())
    atomic_save(ckpt, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="does not match its architecture"):
        load_classifier(tmp_path / "x.pt")


def test_offline_imagenet_weights_give_a_clear_error(monkeypatch, tmp_path):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(PretrainedWeightsUnavailable, match=r"place the file resnet18-f37072fd.pth .* at .*hub/checkpoints"):
        build_model("resnet18", 3, pretrained="imagenet")


def test_imagenet_weights_from_a_local_file_are_adapted_to_one_channel(monkeypatch, tmp_path):
    """A local weights file (as a user offline would place it) is summed over RGB and loaded."""
    import torchvision

    rgb = torchvision.models.resnet18(weights=None).state_dict()
    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        lambda self, **kw: rgb)
    model = build_model("resnet18", 3, pretrained="imagenet")
    assert torch.allclose(model.conv1.weight, rgb["conv1.weight"].sum(1, keepdim=True))
    assert model.fc.out_features == 3


def test_a_local_weights_file_starts_the_backbone_and_never_the_head(tmp_path):
    """`--pretrained FILE`: a state dict of the same architecture (bare, under "model" as a covid_core checkpoint
    keeps it, or with DDP's "module." prefix) sets every layer but the head."""
    torch.manual_seed(1)
    source = build_model("resnet18", 2)
    state = source.state_dict()
    for i, saved in enumerate([state, {"model": state}, {f"module.{k}": v for k, v in state.items()}]):
        path = tmp_path / f"w{i}.pt"
        torch.save(saved, path)
        torch.manual_seed(2)
        model = build_model("resnet18", 3, pretrained=str(path))
        assert torch.equal(model.conv1.weight, source.conv1.weight)
        assert torch.equal(model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
        assert model.fc.out_features == 3 and not torch.equal(model.fc.weight[:2], source.fc.weight)


def test_a_weights_file_that_is_missing_foreign_or_not_weights_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_model("resnet18", 3, pretrained=str(tmp_path / "absent.pt"))
    cnn = tmp_path / "cnn.pt"
    torch.save(build_model("cnn", 3).state_dict(), cnn)
    with pytest.raises(ConfigError, match=r"fit \d+ of the \d+ layers' tensors of resnet18; .*another architecture"):
        build_model("resnet18", 3, pretrained=str(cnn))
    objects = tmp_path / "objects.pt"
    torch.save({"model": build_model("cnn", 3)}, objects)  # a pickled module, not a state dict
    with pytest.raises(ConfigError, match="could not be read as weights"):
        build_model("cnn", 3, pretrained=str(objects))
    text = tmp_path / "notes.pt"
    text.write_text("not a torch file")
    with pytest.raises(ConfigError, match="could not be read as weights"):
        build_model("cnn", 3, pretrained=str(text))
    state = build_model("cnn", 3).state_dict()
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first][0] = float("nan")
    nan = tmp_path / "nan.pt"
    torch.save(state, nan)
    with pytest.raises(ConfigError, match=f"not finite numbers \\(in {first}\\)"):
        build_model("cnn", 3, pretrained=str(nan))
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(ConfigError, match="holds no state dict"):
        build_model("cnn", 3, pretrained=str(empty))
