"""covid_core.shortcuts.texture_swap (the model card, bench/spectrum_swap.py): a film keeps its phase and takes
its donor's amplitude; no film is its own donor."""

from __future__ import annotations

import numpy as np
import pandas as pd

from covid_core import shortcuts
from conftest import write_provenance


def test_a_film_with_its_own_amplitude_is_unchanged_and_a_donors_amplitude_brings_its_texture():
    rng = np.random.default_rng(0)
    films = rng.integers(60, 200, size=(4, 32, 32), dtype=np.uint8)
    assert np.abs(shortcuts.with_donor_amplitude(films, films).astype(int) - films).max() <= 1
    smooth = np.full((1, 32, 32), 120, np.uint8)
    smooth[:, 8:24, 4:12] = 200  # a block on the left
    donor = np.full((1, 32, 32), 100, np.uint8)
    donor[:, 8:24, 20:28] = 180  # the same block on the RIGHT (a shift changes the phase, not the amplitude)...
    donor[..., ::2] += 40  # ...and a fine texture
    out = shortcuts.with_donor_amplitude(smooth, donor)[0].astype(float)
    assert np.abs(np.diff(out, axis=1)).mean() > 5 * np.abs(np.diff(smooth[0].astype(float), axis=1)).mean()
    assert out[8:24, 4:12].mean() > out[8:24, 20:28].mean() + 10  # the block is still where it was


def test_every_pair_gets_a_row_and_no_film_is_its_own_donor(tiny_checkpoint, monkeypatch):
    from covid_core.checkpoint import load_classifier

    clf = load_classifier(tiny_checkpoint)
    groups = [("nih", "normal"), ("nih", "pneumonia"), ("kermany", "normal"), ("cohen", "covid19")]
    table = pd.DataFrame([{"source": s, "label": c} for s, c in groups for _ in range(3)])
    images = np.random.default_rng(1).integers(0, 256, size=(len(table), 64, 64), dtype=np.uint8)
    used = []
    real = shortcuts.with_donor_amplitude
    monkeypatch.setattr(shortcuts, "with_donor_amplitude", lambda f, d: used.append((f, d)) or real(f, d))
    rows = shortcuts.texture_swap(clf, table, images)
    assert [(r["films"], r["donor"]) for r in rows] == list(shortcuts.CARD_SWAPS)
    assert all(r["n"] == 3 and 0 <= r["as_is"] <= 1 and 0 <= r["swapped"] <= 1 for r in rows)
    for films, donors in used:  # a film is never given its own spectrum
        assert not any(np.array_equal(f, d) for f, d in zip(films, donors))
    no_nih = (table["source"] != "nih").to_numpy()
    rows = shortcuts.texture_swap(clf, table[no_nih].reset_index(drop=True), images[no_nih])
    assert [(r["films"], r["donor"]) for r in rows] == [("COVID-19", "COVID-19")]  # pairs without films are left out


def _card(control: float, foreign: float) -> dict:
    return {"card": {"texture_swap": [
        {"films": "NIH normal", "donor": "NIH normal", "n": 58, "as_is": 0.03, "swapped": control},
        {"films": "NIH normal", "donor": "Kermany normal", "n": 58, "as_is": 0.03, "swapped": foreign},
        {"films": "COVID-19", "donor": "NIH normal", "n": 60, "as_is": 0.93, "swapped": 0.5}]}}


def test_the_card_and_the_models_page_show_each_stored_swap_and_warn_only_when_a_foreign_look_matters():
    from covid_core.evaluation import shortcut_rows, texture_swap_warning

    rows = shortcut_rows(_card(0.14, 0.64))
    assert [r["figure"] for r in rows] == [0.14, 0.64, 0.5] and all(r["split"] == "TEST" for r in rows)
    assert "another NIH adult normal film" in rows[0]["question"] and "(as they are: 0.030)" in rows[0]["question"]
    assert "an NIH adult normal film" in rows[2]["question"]
    warning = texture_swap_warning(_card(0.14, 0.64))
    assert "3% of the time as they are, 14% with" in warning and "64% with that of a Kermany child normal" in warning
    assert texture_swap_warning(_card(0.14, 0.20)) is None  # within 10 points of the control: no warning
    assert texture_swap_warning({}) is None and shortcut_rows({}) == []


def test_a_positive_verdict_carries_the_texture_warning():
    from types import SimpleNamespace

    from covid_core.verdict import verdict_limits

    positive = SimpleNamespace(withheld=False, covid_positive=True)
    assert any("Kermany child normal" in s for s in verdict_limits(positive, {"target": "3class", **_card(0.1, 0.7)}, {}))
    assert not any("Kermany" in s for s in verdict_limits(positive, {"target": "3class", **_card(0.1, 0.15)}, {}))


def test_a_finished_training_run_stores_its_texture_swaps_for_its_card(folder_dataset, tmp_path):
    from covid_core import training
    from covid_core.checkpoint import load_checkpoint_dict
    from covid_core.evaluation import shortcut_rows
    from covid_core.training import TrainConfig

    write_provenance(folder_dataset, lambda i, f: "cohen" if f.startswith("covid19") else "nih")
    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=8, image_size=32,
                         augment=False, val_fraction=0.2, runs_dir=str(tmp_path / "runs"))
    ckpt = load_checkpoint_dict(training.run(config, progress=False))
    swaps = ckpt["card"]["texture_swap"]
    # no Kermany film here, so the pairs with a Kermany donor are left out
    assert [(r["films"], r["donor"]) for r in swaps] == [("NIH normal", "NIH normal"), ("NIH normal", "COVID-19"),
                                                          ("COVID-19", "COVID-19"), ("COVID-19", "NIH normal")]
    assert all(r["n"] == 4 for r in swaps)  # the four TEST films of each class
    assert sum("texture swap" in r["question"] for r in shortcut_rows(ckpt)) == 4
