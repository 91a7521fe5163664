"""Class activation maps from the ``grad-cam`` package (pytorch-grad-cam), by lowercase name.

The target layer always comes from the model registry (``ModelSpec.target_layer``), so no
call site knows about architectures. ``pytorch_grad_cam`` is imported inside the functions
because importing it takes seconds and the app must start fast.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models import forward_lock

#: Method names accepted everywhere (CLI, app, API), mapped to the package's class names.
_CLASS_NAMES = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
}
CAM_METHODS = tuple(_CLASS_NAMES)

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


def compute_cams(model: nn.Module, target_layer: nn.Module, x: torch.Tensor, method: str = "gradcam",
                 class_indices: list[int | None] | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """CAMs for a batch.

    x: float32 Bx1xSxS model input. class_indices: one class index per image, None = the
    model's top class. Returns (cams float32 BxSxS in [0, 1] with no NaN, logits BxC).
    """
    import pytorch_grad_cam

    method = check_method(method)
    model.eval()
    indices = list(class_indices) if class_indices is not None else [None] * len(x)
    cam_class = getattr(pytorch_grad_cam, _CLASS_NAMES[method])
    # CAM hooks and the temporary requires_grad flags live on the model itself, which the app shares between
    # sessions: no other pass of this model may run meanwhile (models.forward_lock).
    with forward_lock(model):
        if method == "scorecam" and None in indices:
            # ScoreCAM scores masked copies of the image, whose top class may differ: fix the
            # class on the unmasked image first (one extra forward pass among hundreds).
            with torch.no_grad():
                top = model(x).argmax(dim=1).tolist()
            indices = [top[i] if c is None else c for i, c in enumerate(indices)]
        cams, logits = _cams(cam_class, model, target_layer, x, method, [_ClassTarget(c) for c in indices])
    cams = np.nan_to_num(np.asarray(cams, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(cams, 0.0, 1.0), logits


def _cams(cam_class, model, target_layer, x, method, targets):
    with _gradients_from(model, target_layer), cam_class(model=model, target_layers=[target_layer]) as cam:
        if method == "scorecam":
            cam.batch_size = SCORECAM_BATCH_SIZE
        cams = cam(input_tensor=x, targets=targets)
        # The package's own forward pass gives the logits: no second prediction needed.
        return cams, cam.outputs.detach()


class _ClassTarget:
    """The logit of one class, or of the model's top class when ``index`` is None."""

    def __init__(self, index: int | None):
        self.index = index

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        index = int(model_output.argmax(dim=-1)) if self.index is None else self.index
        return model_output[..., index]
