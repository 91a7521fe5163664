"""fit "thorax": the film is cut to its estimated thorax before the network, and maps go back to the full film;
fit "mask" also blacks out what lies outside the estimated thorax."""

from __future__ import annotations

import dataclasses

import numpy as np

from covid_core.preprocess import PreprocessConfig, prepare_pixels, thorax_box


def _film(h: int = 400, w: int = 320) -> np.ndarray:
    """float32 HxW: a bright body with two dark lungs in the middle and a white text block in a corner."""
    yy, xx = np.mgrid[:h, :w] / np.array([h, w])[:, None, None]
    img = np.full((h, w), 0.05, np.float32)
    body = ((yy - 0.55) / 0.42) ** 2 + ((xx - 0.5) / 0.45) ** 2 < 1
    img[body] = 0.75
    for cx in (0.32, 0.68):
        img[((yy - 0.5) / 0.25) ** 2 + ((xx - cx) / 0.12) ** 2 < 1] = 0.2
    img[5:25, 5:60] = 1.0  # a side marker / text in the corner, outside the thorax
    return img


def test_the_thorax_box_holds_both_lungs_and_drops_the_corner_marker():
    img = (_film() * 255).astype(np.uint8)
    top, left, h, w = thorax_box(img)
    assert top > 25 or left > 60  # the marker block lies outside the box
    assert left <= 0.32 * 320 - 0.12 * 320 and left + w >= 0.68 * 320 + 0.12 * 320  # both lungs inside
    assert abs(left - (320 - (left + w))) <= 1  # symmetric about the centre line


def test_a_flat_image_keeps_the_whole_film():
    assert thorax_box(np.full((100, 80), 128, np.uint8)) == (0, 0, 100, 80)


def test_a_model_space_map_returns_onto_the_crop_box_of_the_full_film_and_of_a_display_copy():
    film = _film()
    pixels, geometry = prepare_pixels(film, PreprocessConfig(image_size=64, fit="thorax"))
    assert pixels.shape == (64, 64) and geometry.crop_h is not None
    ones = np.ones((64, 64), np.float32) * geometry.content_mask()
    back = geometry.to_original(ones)
    assert back.shape == film.shape
    rows, cols = np.nonzero(back > 0.5)
    assert abs(rows.min() - geometry.crop_top) <= 2 and abs(cols.min() - geometry.crop_left) <= 2
    assert abs(rows.max() + 1 - (geometry.crop_top + geometry.crop_h)) <= 2
    half = dataclasses.replace(geometry, orig_h=200, orig_w=160)  # the same film shown at half size
    small = half.to_original(ones)
    assert small.shape == (200, 160)
    rows2, _ = np.nonzero(small > 0.5)
    assert abs(rows2.min() - geometry.crop_top / 2) <= 2
    padded, g = prepare_pixels(film, PreprocessConfig(image_size=64, fit="pad"))
    assert g.crop_h is None and g.to_original(np.ones((64, 64), np.float32) * g.content_mask()).min() > 0.5


def test_mask_blacks_out_the_corners_of_the_thorax_box_and_keeps_the_lungs():
    film = _film()
    top, left, h, w = thorax_box((film * 255).astype(np.uint8))
    film[top + 2:top + 12, left + 2:left + 20] = 1.0  # a marker in a corner of the thorax box
    thorax, _ = prepare_pixels(film, PreprocessConfig(image_size=64, fit="thorax"))
    masked, geometry = prepare_pixels(film, PreprocessConfig(image_size=64, fit="mask"))
    assert thorax.max() == 255 and masked.max() < 255  # the marker reaches the network with "thorax", not "mask"
    assert geometry == prepare_pixels(film, PreprocessConfig(image_size=64, fit="thorax"))[1]  # maps as "thorax"
    centre = (slice(24, 40), slice(16, 48))  # the lungs and the body between them are kept as they were
    assert np.array_equal(masked[centre], thorax[centre]) and masked[centre].min() > 0


def test_mask_has_the_same_shape_on_a_film_whose_lungs_are_not_found():
    flat = np.full((100, 100), 0.6, np.float32)  # square: no padding, so a black corner is the mask's doing
    masked, _ = prepare_pixels(flat, PreprocessConfig(image_size=64, fit="mask"))
    assert masked[32, 32] == 153 and masked[32, 1] == 153 and masked[1, 32] == 153  # the ellipse touches each side
    assert masked[2, 2] == 0 and masked[61, 61] == 0 and masked[2, 61] == 0 and masked[61, 2] == 0


def test_every_framing_has_a_name_on_the_train_form():
    from covid_core.preprocess import FIT_CHOICES, FIT_LABELS

    assert set(FIT_LABELS) == set(FIT_CHOICES) and len(set(FIT_LABELS.values())) == len(FIT_CHOICES)
