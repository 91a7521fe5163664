"""bench/test_time_augmentation.py: the copies it averages are the film itself and the film moved within the light
augmentation's range, never mirrored."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))  # the bench script imports its sibling shortcut_ablation
tta = importlib.import_module("test_time_augmentation")


def _film() -> np.ndarray:
    """A 64x64 film: a bright square left of centre (the heart's side is on the film's right; any asymmetry will
    do), on a dark ground."""
    film = np.full((1, 64, 64), 20, np.uint8)
    film[0, 20:44, 10:30] = 220
    return film


def test_the_first_copy_is_the_film_itself():
    film = _film()
    assert tta.VIEWS[0] == (0, 1.0, 0, 0)
    assert np.array_equal(tta.moved(film, *tta.VIEWS[0]), film)


@pytest.mark.parametrize("view", tta.VIEWS[1:])
def test_no_copy_is_mirrored_and_each_moves_the_film_a_little(view):
    film = _film()
    copy = tta.moved(film, *view)
    assert copy.shape == film.shape and copy.dtype == np.uint8
    left, right = copy[0, :, :32].mean(), copy[0, :, 32:].mean()
    assert left > 2 * right  # still on the left: not mirrored
    changed = np.mean(copy != film)
    assert 0 < changed < 0.2  # moved, but by a few pixels only


def test_zoom_above_one_enlarges_what_is_on_the_film():
    film = _film()
    bright = (film > 120).sum()
    assert (tta.moved(film, 0, 1.06, 0, 0) > 120).sum() > bright > (tta.moved(film, 0, 0.94, 0, 0) > 120).sum()
