"""Explanations: Grad-CAM-family heatmaps on the original image, with trust checks.

``pytorch_grad_cam`` is imported only when a heatmap is made (it takes seconds to import).
"""

from .cam import CAM_METHODS, CLASS_AGNOSTIC_METHODS, DEFAULT_METHOD, check_method
from .class_means import class_mean_heatmaps, mean_heatmaps_and_thorax_share
from .explanation import (Explanation, class_index, classes_to_explain, explain, explain_batch, explain_pixels,
                          heatmap_description)
from .overlay import COLORMAPS, overlay
from ..thorax import estimate_thorax
from .trust import MIN_THORAX_SHARE

__all__ = [
    "CAM_METHODS", "CLASS_AGNOSTIC_METHODS", "COLORMAPS", "DEFAULT_METHOD", "Explanation", "MIN_THORAX_SHARE",
    "check_method", "class_index", "class_mean_heatmaps", "classes_to_explain", "estimate_thorax", "explain",
    "explain_batch", "explain_pixels", "heatmap_description", "mean_heatmaps_and_thorax_share", "overlay",
]
