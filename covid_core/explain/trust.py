"""Can this explanation be trusted? Faithfulness and the shortcut warning.

Faithfulness uses the ``grad-cam`` package's own ROAD metric (Rong et al. 2022,
``pytorch_grad_cam.metrics.road``): the 20 % most highlighted pixels are removed by noisy
linear imputation and the drop in the explained class's probability is measured. A map
that points at evidence the model really uses gives a clear drop; a map that points
elsewhere gives about zero (or a rise).

The shortcut warning follows DeGrave et al. (Nature Machine Intelligence 2021): COVID-19
chest X-ray classifiers often learn text markers, laterality tags and image borders. The
share of heatmap energy (sum of squared heatmap values, which weighs the highlighted
region over the faint background that coarse CAMs spread everywhere) inside the estimated thorax and on the
image border (letterbox padding plus a thin band along the image's edges) is reported and
flagged when the evidence is mostly outside the thorax or piles up on the border.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models import forward_lock

#: Share of pixels removed by the faithfulness metric (the most highlighted ones).
REMOVED_PERCENT = 20


def faithfulness_name(by: str = "") -> str:
    """What the faithfulness figure is, in words; ``by``: the site's head whose probability it watches, if any."""
    whose = f"the probability {by} gives the explained class" if by else "the explained class's probability"
    return (f"drop in {whose} when the {REMOVED_PERCENT}% most highlighted pixels are removed (ROAD); clearly above 0 "
            "means the heatmap shows evidence the model uses")


#: Below this share of heatmap energy inside the thorax, the explanation is flagged.
MIN_THORAX_SHARE = 0.5
#: Above this share of heatmap energy on the border band, the explanation is flagged
#: (a uniform map puts about 19 % there with the 5 % band).
MAX_BORDER_SHARE = 0.35
#: Width of the border band on each side, as a fraction of the image's height / width.
BORDER_FRACTION = 0.05


def faithfulness(model: nn.Module, x: torch.Tensor, cams: np.ndarray, scores: list,
                 outputs: torch.Tensor) -> np.ndarray:
    """ROAD score per image: float32 B, the probability drop (in [-1, 1]) of the explained class.

    x: float32 Bx1xSxS model input; cams: float32 BxSxS in [0, 1]; scores: the explained score of each image
    (:class:`~covid_core.explain.scores.ExplainedScore`, its column known), whose probability is watched;
    outputs: ``model``'s outputs for x (reused, so only the perturbed images need a forward pass).
    """
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst

    targets = [s.probability for s in scores]
    # Grad-CAM maps are often exactly 0 over most pixels; the metric thresholds at a
    # percentile, so without a tie-break it would remove every pixel. A tiny fixed-seed
    # jitter makes it remove exactly the top share (zero pixels in arbitrary order).
    jitter = np.random.default_rng(0).random(cams.shape, dtype=np.float32) * 1e-6
    cams = np.asarray(cams, np.float32) + jitter
    metric = ROADMostRelevantFirst(percentile=100 - REMOVED_PERCENT)
    with forward_lock(model):  # another thread's hooks must not read these passes (models.forward_lock)
        after = metric(x, cams, targets, model, return_diff=False)
    before = np.array([t(out).item() for t, out in zip(targets, outputs)], np.float32)
    return (before - np.asarray(after, np.float32).reshape(-1)).astype(np.float32)


def border_band(content: np.ndarray, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """bool HxW: padding (outside ``content``) plus a band of ``fraction`` along the content's edges."""
    content = np.asarray(content, bool)
    band = ~content
    ys, xs = np.nonzero(content)
    if len(ys) == 0:
        return band
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    by, bx = max(1, round(fraction * (y1 - y0))), max(1, round(fraction * (x1 - x0)))
    inner = np.zeros_like(content)
    inner[y0 + by:y1 - by, x0 + bx:x1 - bx] = True
    return band | (content & ~inner)


def energy_shares(heatmap: np.ndarray, thorax: np.ndarray, border: np.ndarray) -> tuple[float, float]:
    """(share of energy inside ``thorax``, share on ``border``), each in [0, 1]; (0, 0) for an empty map.

    heatmap: float HxW >= 0; thorax, border: bool HxW. Energy is the sum of squared values.
    """
    heatmap = np.square(np.asarray(heatmap, np.float64))
    total = heatmap.sum()
    if not total > 0:
        return 0.0, 0.0
    return float(heatmap[thorax].sum() / total), float(heatmap[border].sum() / total)


def faithfulness_warning(drop: float | None) -> str | None:
    """A sentence when removing the most highlighted pixels does not lower the explained class's probability
    (ROAD drop <= 0): the heatmap then does not show evidence the model uses, whatever it looks like."""
    if drop is None or drop > 0:
        return None
    return (f"Removing the {REMOVED_PERCENT}% most highlighted pixels did not lower the probability of this class "
            f"(change {100 * -drop + 0.0:+.1f} percentage points): this heatmap does not show what the model "
            "relies on. Try another Grad-CAM method.")


def shortcut_warning(thorax_share: float, border_share: float, empty: bool = False) -> str | None:
    """A sentence for the clinician when the evidence is not over the chest, else None."""
    if empty:
        return ("The heatmap is empty: the model found no evidence for this class at the explained layer, "
                "so the explanation cannot show where it looked.")
    reasons = []
    if thorax_share < MIN_THORAX_SHARE:
        reasons.append(f"only {thorax_share:.0%} of the heatmap lies inside the estimated thorax")
    if border_share > MAX_BORDER_SHARE:
        reasons.append(f"{border_share:.0%} of it lies on the image border")
    if not reasons:
        return None
    return ("Possible shortcut: " + " and ".join(reasons) + ". The model may rely on markers, borders or "
            "scanner artefacts rather than the lungs; do not trust this prediction without review.")
