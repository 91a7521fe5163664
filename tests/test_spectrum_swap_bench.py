"""bench/spectrum_swap.py: a film keeps its phase and takes its donor's amplitude; donors never the film itself."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
swap = importlib.import_module("spectrum_swap")


def test_a_film_with_its_own_amplitude_is_unchanged_and_a_donors_amplitude_brings_its_texture():
    rng = np.random.default_rng(0)
    films = rng.integers(60, 200, size=(4, 32, 32), dtype=np.uint8)
    assert np.abs(swap.with_donor_amplitude(films, films).astype(int) - films).max() <= 1
    smooth = np.full((1, 32, 32), 120, np.uint8)
    smooth[:, 8:24, 4:12] = 200  # a block on the left
    donor = np.full((1, 32, 32), 100, np.uint8)
    donor[:, 8:24, 20:28] = 180  # the same block on the RIGHT (a shift changes the phase, not the amplitude)...
    donor[..., ::2] += 40  # ...and a fine texture
    out = swap.with_donor_amplitude(smooth, donor)[0].astype(float)
    assert np.abs(np.diff(out, axis=1)).mean() > 5 * np.abs(np.diff(smooth[0].astype(float), axis=1)).mean()
    assert out[8:24, 4:12].mean() > out[8:24, 20:28].mean() + 10  # the block is still where it was


def test_every_group_gets_a_row_and_no_film_is_its_own_donor(tiny_checkpoint, monkeypatch):
    from covid_core.checkpoint import load_classifier

    clf = load_classifier(tiny_checkpoint)
    groups = [("nih", "normal"), ("nih", "pneumonia"), ("kermany", "normal"), ("cohen", "covid19")]
    table = pd.DataFrame([{"source": s, "label": c} for s, c in groups for _ in range(3)])
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(len(table), 64, 64), dtype=np.uint8)
    used = []
    real = swap.with_donor_amplitude
    monkeypatch.setattr(swap, "with_donor_amplitude", lambda f, d: used.append((f, d)) or real(f, d))
    rows = swap.swap_rows(clf, table, images)
    assert [r["group"] for r in rows] == list(swap.GROUPS) and all(r["n"] == 3 for r in rows)
    for r in rows:
        assert all(0 <= r[k] <= 1 for k in ("as is", *swap.DONORS)) and 0 <= r["histogram"][1] <= 1
    for films, donors in used:  # a film is never given its own spectrum
        assert not any(np.array_equal(f, d) for f, d in zip(films, donors))
