"""Class activation maps from the ``grad-cam`` package (pytorch-grad-cam), by lowercase name.

The target layer always comes from the model registry (``ModelSpec.heatmap_layer``), so no
call site knows about architectures. ``pytorch_grad_cam`` is imported inside the functions
because importing it takes seconds and the app must start fast.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models import forward_lock
from .scores import ExplainedScore

#: Method names accepted everywhere (CLI, app, API), mapped to the package's class names; the default first.
_CLASS_NAMES = {
    "hirescam": "HiResCAM",
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
}
CAM_METHODS = tuple(_CLASS_NAMES)
#: HiResCAM (Draelos & Carin 2020) multiplies the gradient by the activations cell by cell instead of averaging the
#: gradient over the map first: a first-order account of what each cell adds to the score. On TEST its maps at
#: ``ModelSpec.heatmap_layer`` showed the most of what the shipped models use (docs/heatmaps.md).
DEFAULT_METHOD = CAM_METHODS[0]

#: Methods whose map does not depend on the class asked for (first principal component of
#: the activations): switching the target class leaves their heatmap unchanged.
CLASS_AGNOSTIC_METHODS = ("eigencam",)

#: Masked images per forward pass for ScoreCAM (one pass per channel of the target layer).
SCORECAM_BATCH_SIZE = 64

def check_method(method: str) -> str:
    """Return the canonical lowercase name of ``method`` or raise ConfigError listing the choices."""
    name = str(method).strip().lower()
    if name not in _CLASS_NAMES:
        raise ConfigError(f"unknown explanation method {method!r}; choose one of: {', '.join(CAM_METHODS)}")
    return name


@contextmanager
def _gradients_from(model: nn.Module, layer: nn.Module):
    """Build the autograd graph only from ``layer``'s output onwards.

    Grad-CAM needs the gradient at the target layer, not at the weights. Freezing every
    parameter and turning the layer's output into a fresh leaf skips the backward pass
    through the backbone and all weight gradients, which keeps a heatmap close to the cost
    of one prediction. The parameters' flags are restored afterwards.
    """
    params = list(model.parameters())
    saved = [p.requires_grad for p in params]

    def make_leaf(module, inputs, output):
        # clone(): later layers may work in place (DenseNet's final ReLU), which autograd
        # forbids on a leaf.
        return output.detach().requires_grad_(True).clone()

    for p in params:
        p.requires_grad_(False)
    handle = layer.register_forward_hook(make_leaf)
    try:
        yield
    finally:
        handle.remove()
        for p, flag in zip(params, saved):
            p.requires_grad_(flag)


def compute_cams(model: nn.Module, target_layer: nn.Module, x: torch.Tensor, method: str = DEFAULT_METHOD,
                 targets: list | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """CAMs for a batch.

    x: float32 Bx1xSxS model input. targets: one per image, an :class:`~covid_core.explain.scores.ExplainedScore`
    or a class index (None = the model's top class). Returns (cams float32 BxSxS in [0, 1] with no NaN, the
    model's outputs BxC, with any site heads' logits after the classes').
    """
    import pytorch_grad_cam

    method = check_method(method)
    model.eval()
    targets = [t if isinstance(t, ExplainedScore) else ExplainedScore(t)
               for t in (targets if targets is not None else [None] * len(x))]
    cam_class = getattr(pytorch_grad_cam, _CLASS_NAMES[method])
    # CAM hooks and the temporary requires_grad flags live on the model itself, which the app shares between
    # sessions: no other pass of this model may run meanwhile (models.forward_lock).
    with forward_lock(model):
        if method == "scorecam" and any(t.column is None for t in targets):
            # ScoreCAM scores masked copies of the image, whose top class may differ: fix the
            # class on the unmasked image first (one extra forward pass among hundreds).
            with torch.no_grad():
                top = model(x)[:, :targets[0].classes].argmax(dim=1).tolist()
            targets = [dataclasses.replace(t, column=top[i]) if t.column is None else t for i, t in enumerate(targets)]
        with _gradients_from(model, target_layer), cam_class(model=model, target_layers=[target_layer]) as cam:
            if method == "scorecam":
                cam.batch_size = SCORECAM_BATCH_SIZE
            cams = cam(input_tensor=x, targets=[t.logit for t in targets])
            # The package's own forward pass gives the outputs: no second prediction needed.
            outputs = cam.outputs.detach()
    cams = np.nan_to_num(np.asarray(cams, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(cams, 0.0, 1.0), outputs
