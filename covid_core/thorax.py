"""A rough estimate of the thorax (both lung fields and the mediastinum between them).

Method (plain image processing, no trained model):

1. Blur the content of the image (never the padding) and split it with Otsu's threshold;
   on a frontal chest X-ray the lungs are the large dark (air-filled) regions inside the
   brighter body.
2. Drop dark regions that touch the edge of the content: that is the air around the patient.
3. Keep up to two large dark regions (each 3-45 % of the content) whose centres lie in the
   central part of the image: the lung fields.
4. The thorax is the convex hull of those regions, slightly dilated, so the heart and
   mediastinum between the lungs count as inside.
5. If that fails the sanity checks (no lung-like region, hull under 15 % or over 85 % of the
   content), fall back to a central ellipse (80 % of the width, 84 % of the height), where the
   thorax lies on a typical frontal chest X-ray.

Limits: this is a heuristic, not a lung segmentation model. It fails on lateral views,
rotated or heavily collimated images, inverted (MONOCHROME1-like) images, dense opacities
that whiten a whole lung (the affected lung can drop out of the hull; the ellipse fallback
then takes over if both do), and children or small fields of view. It is meant only to tell
"evidence over the chest" from "evidence at the image border, on text markers or outside
the body", not to measure anything in the lungs.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIZE = 128
MIN_LUNG_FRACTION = 0.03
MAX_LUNG_FRACTION = 0.45
MIN_HULL_FRACTION = 0.15
MAX_HULL_FRACTION = 0.85
ELLIPSE_HALF_WIDTH = 0.40
ELLIPSE_HALF_HEIGHT = 0.42


def central_ellipse(content: np.ndarray) -> np.ndarray:
    """bool HxW: an ellipse centred on the content box (bool HxW True where there is image)."""
    mask = np.zeros(content.shape, bool)
    ys, xs = np.nonzero(content)
    if len(ys) == 0:
        return mask
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    cy, cx = (y0 + y1 - 1) / 2.0, (x0 + x1 - 1) / 2.0
    ry, rx = max(ELLIPSE_HALF_HEIGHT * (y1 - y0), 1.0), max(ELLIPSE_HALF_WIDTH * (x1 - x0), 1.0)
    yy, xx = np.mgrid[:content.shape[0], :content.shape[1]]
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return mask & content


def _lung_hull(small: np.ndarray, content: np.ndarray) -> np.ndarray | None:
    """bool mask of the dilated hull of the lung-like dark regions, or None if not found."""
    area = int(content.sum())
    if area < 64:
        return None
    blurred = cv2.GaussianBlur(small, (5, 5), 0)
    values = blurred[content]
    if values.max() - values.min() < 16:  # too flat to tell air from tissue
        return None
    otsu, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = ((blurred <= otsu) & content).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, kernel)
    # A dark pixel next to the padding or the image edge belongs to the air around the body.
    edge = content & ~cv2.erode(content.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0).astype(bool)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(dark, connectivity=8)
    ys, xs = np.nonzero(content)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    candidates = []
    for i in range(1, n):
        size = stats[i, cv2.CC_STAT_AREA]
        cx = (centroids[i][0] - x0) / (x1 - x0)
        cy = (centroids[i][1] - y0) / (y1 - y0)
        if not MIN_LUNG_FRACTION * area <= size <= MAX_LUNG_FRACTION * area:
            continue
        if not (0.1 <= cx <= 0.9 and 0.1 <= cy <= 0.85):
            continue
        component = labels == i
        if (component & edge).any():
            continue
        candidates.append((size, component))
    if not candidates:
        return None
    candidates.sort(key=lambda c: -c[0])
    lungs = np.zeros_like(content)
    for _, component in candidates[:2]:
        lungs |= component
    points = cv2.findNonZero(lungs.astype(np.uint8))
    hull = np.zeros(small.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    hull = cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))).astype(bool) & content
    if not MIN_HULL_FRACTION * area <= hull.sum() <= MAX_HULL_FRACTION * area:
        return None
    return hull


def estimate_thorax(pixels_u8: np.ndarray, content: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Estimate the thorax on a model-space (or any) grayscale image.

    pixels_u8: uint8 HxW (dark = air, as displayed). content: bool HxW, True where the image
    holds content (False on letterbox padding; default: everywhere).
    Returns (bool HxW thorax mask, how: "lung fields" or "central ellipse" (the fallback)).
    """
    pixels_u8 = np.asarray(pixels_u8)
    if pixels_u8.dtype != np.uint8:
        pixels_u8 = np.clip(np.asarray(pixels_u8, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = pixels_u8.shape
    content = np.ones((h, w), bool) if content is None else np.asarray(content, bool)
    scale = WORK_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(pixels_u8, size, interpolation=cv2.INTER_AREA)
    small_content = cv2.resize(content.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    hull = _lung_hull(small, small_content)
    if hull is None:
        return central_ellipse(content), "central ellipse"
    mask = cv2.resize(hull.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return mask & content, "lung fields"
