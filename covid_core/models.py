"""The model registry: every classifier by name, with what call sites need to know.

A :class:`ModelSpec` holds the builder, default input size, channel count, a
description, the layer whose features the familiarity check reads and the layer the
heatmap explains, so no call site special-cases an architecture (as torchvision's
``get_model`` and timm's ``_cfg`` do).
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import ConfigError, PretrainedWeightsUnavailable


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture.

    build(num_classes) -> nn.Module taking float32 Bx1xSxS, returning logits BxC.
    feature_layer(model) -> the last convolutional stage, whose spatial features the familiarity check reads.
    heatmap_layer(model) -> the module whose activations the heatmap (Grad-CAM family) explains: one stage before
        the last where ``bench/heatmap_methods.py`` measured that stage's maps to show more of what the model uses.
    imagenet_weights: torchvision weights enum name, or None if there are none.
    style_layers(model) -> the early stages whose outputs MixStyle mixes (``--mix-style``).
    """

    name: str
    build: Callable[[int], nn.Module]
    feature_layer: Callable[[nn.Module], nn.Module]
    heatmap_layer: Callable[[nn.Module], nn.Module]
    default_image_size: int
    description: str
    imagenet_weights: str | None = None
    in_channels: int = 1
    style_layers: Callable[[nn.Module], list[nn.Module]] = lambda m: []


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


class BaselineCNN(nn.Module):
    """The "sequential" baseline: four conv-BN-ReLU-pool blocks, global pooling, a linear head."""

    def __init__(self, num_classes: int, widths=(32, 64, 128, 256)):
        super().__init__()
        blocks, c_in = [], 1
        for c in widths:
            blocks.append(nn.Sequential(
                nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ))
            c_in = c
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(c_in, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def _resnet(arch: str):
    def build(num_classes: int) -> nn.Module:
        import torchvision

        model = getattr(torchvision.models, arch)(weights=None)
        model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        return model
    return build


def _densenet121(num_classes: int) -> nn.Module:
    import torchvision

    model = torchvision.models.densenet121(weights=None)
    model.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    return model


register_model(ModelSpec(
    "cnn", BaselineCNN, lambda m: m.features[-1], lambda m: m.features[-2], 128,
    "baseline sequential CNN (4 conv blocks, ~1.2M parameters)",
    style_layers=lambda m: [m.features[0], m.features[1]]))
register_model(ModelSpec(
    # docs/shortcuts.md: 160 px beat 96, 224 and 256; docs/heatmaps.md: layer3's maps show more of what it uses
    "resnet18", _resnet("resnet18"), lambda m: m.layer4[-1], lambda m: m.layer3[-1], 160,
    "ResNet-18 (He et al. 2016), 11M parameters", imagenet_weights="ResNet18_Weights",
    style_layers=lambda m: [m.layer1, m.layer2]))
register_model(ModelSpec(
    "resnet50", _resnet("resnet50"), lambda m: m.layer4[-1], lambda m: m.layer4[-1], 224,
    "ResNet-50, 24M parameters", imagenet_weights="ResNet50_Weights",
    style_layers=lambda m: [m.layer1, m.layer2]))
register_model(ModelSpec(
    "densenet121", _densenet121, lambda m: m.features[-1], lambda m: m.features[-1], 224,
    "DenseNet-121, CheXNet's backbone (Rajpurkar et al. 2017), 7M parameters",
    imagenet_weights="DenseNet121_Weights",
    style_layers=lambda m: [m.features.denseblock1, m.features.denseblock2]))


def _imagenet_state_dict(spec: ModelSpec) -> dict:
    """Download (or read from the torch hub cache) torchvision's ImageNet weights."""
    import torchvision

    if spec.imagenet_weights is None:
        raise ConfigError(f"model {spec.name!r} has no ImageNet weights; train it from scratch")
    weights = getattr(torchvision.models, spec.imagenet_weights).IMAGENET1K_V1
    filename = os.path.basename(weights.url)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "offline"
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for {spec.name} could not be downloaded ({type(exc).__name__}: {exc}). "
            f"Offline, place the file {filename} (from {weights.url}) at {cached}, or train without --pretrained"
        ) from exc


def _adapt_to_one_channel(state: dict, model: nn.Module) -> dict:
    """Sum the RGB filters of the first conv into one grayscale filter; drop the ImageNet head."""
    own = model.state_dict()
    out = {}
    for k, v in state.items():
        if k not in own:
            continue
        if v.ndim == 4 and v.shape[1] == 3 and own[k].shape[1] == 1:
            v = v.sum(dim=1, keepdim=True)
        if v.shape == own[k].shape:
            out[k] = v
    return out


def is_weights_file(pretrained: str) -> bool:
    """Whether a ``pretrained`` value names a local weights file rather than none or imagenet."""
    return pretrained not in (None, "", "none", "imagenet")


def _file_state_dict(path: str) -> dict:
    """The tensors of a local weights file: a state dict, or a dict holding one under "state_dict" or "model"
    (a training script's or a covid_core checkpoint's); loaded with ``weights_only=True``, never unpickled."""
    if not os.path.isfile(path):
        raise ConfigError(f"pretrained weights file {path!r} does not exist; give a .pt or .pth file of weights, "
                          "or none or imagenet")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file, a pickle of objects, not a torch file at all
        raise ConfigError(f"pretrained weights file {path!r} could not be read as weights ({type(exc).__name__}); "
                          "it must be a state dict saved with torch.save") from exc
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not any(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ConfigError(f"pretrained weights file {path!r} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


def _load_backbone(model: nn.Module, state: dict, name: str, origin: str) -> None:
    """Load ``state`` (adapted to one channel) into every layer but the head; refuse weights of another
    architecture, which would fit few of its layers."""
    head_layer = last_linear(model)
    head = {f"{n}.{p}" for n, m in model.named_modules() if m is head_layer for p in ("weight", "bias")}
    adapted = {k: v for k, v in _adapt_to_one_channel(state, model).items() if k not in head}
    backbone = [k for k in model.state_dict() if k not in head and not k.endswith("num_batches_tracked")]
    fitted = sum(k in adapted for k in backbone)
    if fitted < 0.9 * len(backbone):
        raise ConfigError(f"the weights of {origin} fit {fitted} of the {len(backbone)} layers' tensors of {name}; "
                          "they are for another architecture")
    broken = [k for k, v in adapted.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise ConfigError(f"the weights of {origin} hold values that are not finite numbers (in {broken[0]}); "
                          "training cannot start from them")
    model.load_state_dict(adapted, strict=False)


def build_model(name: str, num_classes: int, pretrained: str | None = None) -> nn.Module:
    """Build ``name`` for ``num_classes``. ``pretrained``: none; ``"imagenet"`` for adapted ImageNet weights; or
    the path of a local weights file (e.g. self-supervised, ``bench/self_supervised.py``), whose head is not used."""
    spec = get_spec(name)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes!r}")
    model = spec.build(num_classes)
    if pretrained in (None, "", "none"):
        return model
    if pretrained == "imagenet":
        _load_backbone(model, _imagenet_state_dict(spec), name, "ImageNet")
    else:
        _load_backbone(model, _file_state_dict(pretrained), name, repr(pretrained))
    return model


def last_linear(model: nn.Module) -> nn.Linear:
    """The final classifier layer: its input is the "penultimate" features, its parameters the head."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the final classifier layer (trained alone during --freeze-epochs)."""
    return list(last_linear(model).parameters())


SPATIAL_GRID = 2  # the final feature map is pooled to this many cells a side for the OOD score

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def forward_lock(model: nn.Module) -> threading.RLock:
    """The lock held by every forward pass of ``model`` that reads its activations through forward hooks (features,
    Grad-CAM) or could be read by another thread's hooks (the faithfulness metric's passes).

    The app shares one model object between every session and a site validation's thread, and a hook is state of
    the model: a film scored in another thread while a heatmap was being made ran through the heatmap's hooks, and
    the heatmap came from that other film's activations (27 of 30 heatmaps, two threads, measured). Passes of one
    model run one at a time: torch already spreads one pass over every core, so little is lost, and a heatmap asked
    for during a site validation waits for the pass in progress (bench/shared_model.py). A module that runs a
    shared model inside it (its ``wraps`` property names that model) holds that model's lock.
    """
    model = getattr(model, "wraps", model)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def model_features(model: nn.Module, x: torch.Tensor, spatial_layer: nn.Module | None = None,
                   grid: int = SPATIAL_GRID) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(logits BxC, {name: features BxD}) from one forward pass, via forward hooks.

    "penultimate": the input of the final linear layer (globally pooled, so blind to where things are).
    "spatial" (only with ``spatial_layer``, usually the spec's ``feature_layer``): that layer's output
    average-pooled to ``grid`` x ``grid`` cells, which keeps the layout (lungs above the diaphragm), so a
    rotated or upside-down film looks unfamiliar.
    """
    captured = {}

    def keep(name, pool):
        def hook(module, inputs, output):  # returns None, so the output is left unchanged
            captured[name] = pool(inputs, output).flatten(1)
        return hook

    with forward_lock(model):
        handles = [last_linear(model).register_forward_hook(keep("penultimate", lambda i, o: i[0]))]
        if spatial_layer is not None:
            handles.append(spatial_layer.register_forward_hook(
                keep("spatial", lambda i, o: nn.functional.adaptive_avg_pool2d(o, grid))))
        try:
            logits = model(x)
        finally:
            for handle in handles:
                handle.remove()
    return logits, captured
