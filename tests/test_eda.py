"""Data-set statistics: counts, missing values, leaks, outliers, disk cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app_helpers import xray_array
from covid_core import eda, eda_charts
from covid_core.errors import DatasetError


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for s, split in enumerate(("train", "test")):
        for k, cls in enumerate(("normal", "covid")):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(xray_array(40 + 8 * (i % 2), seed=100 * s + 10 * k + i)).save(d / f"{i}.png")
    (root / "test" / "covid" / "copy.png").write_bytes((root / "train" / "covid" / "0.png").read_bytes())
    Image.new("L", (40, 40), 128).save(root / "train" / "normal" / "blank.png")
    Image.fromarray(255 - xray_array(40, seed=999)).save(root / "train" / "normal" / "inverted.png")
    (root / "train" / "normal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_summary_counts_leaks_outliers_and_errors(data):
    calls = []
    s = eda.summarize(data, on_progress=lambda done, total: calls.append((done, total)))
    assert not s.from_cache and calls[-1] == (20, 20)
    counts = s.counts().set_index(["split", "finding"])["images"]
    assert counts[("train", "normal")] == 7 and counts[("test", "covid19")] == 5
    assert set(s.leaks()["filename"]) == {"0.png", "copy.png"}
    flagged = dict(zip(s.outliers()["filename"], s.outliers()["outlier"]))
    assert "near-blank" in flagged["blank.png"]
    assert "likely inverted" in flagged["inverted.png"]
    assert not any("inverted" in v for k, v in flagged.items() if k != "inverted.png")
    broken = s.stats[s.stats["filename"] == "broken.png"].iloc[0]
    assert "truncated" in broken["error"] or "corrupt" in broken["error"]
    assert set(s.stats["width"].dropna().astype(int)) == {40, 48}
    assert set(s.mean_images) == {"normal", "covid19"} and s.mean_images["normal"].shape == (64, 64)
    assert np.all(np.diff(s.quantiles["covid19"]) >= 0)


def test_second_call_reads_the_disk_cache_and_a_change_invalidates_it(data):
    first = eda.summarize(data)
    calls = []
    again = eda.summarize(data, on_progress=lambda d, t: calls.append(d))
    assert again.from_cache and not calls
    assert again.stats["outlier"].tolist() == first.stats["outlier"].tolist()
    assert again.leaks()["cross_split"].all() and len(again.leaks()) == 2
    Image.fromarray(xray_array(40, seed=5)).save(data / "test" / "normal" / "new.png")
    assert not eda.summarize(data).from_cache


def test_missing_values_of_the_coronahack_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "ch"
    img_dir = root / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset"
    rows = [",X_ray_image_name,Label,Dataset_type,Label_2_Virus_category,Label_1_Virus_category"]
    for i, (split, label, l2) in enumerate([("TRAIN", "Normal", ""), ("TRAIN", "Pnemonia", "COVID-19"),
                                            ("TEST", "Normal", ""), ("TEST", "Pnemonia", "")]):
        (img_dir / split.lower()).mkdir(parents=True, exist_ok=True)
        Image.fromarray(xray_array(40, seed=i)).save(img_dir / split.lower() / f"{i}.jpeg")
        rows.append(f"{i},{i}.jpeg,{label},{split},{l2},{'Virus' if l2 else ''}")
    root.joinpath("Chest_Xray_Corona_Metadata.csv").write_text("\n".join(rows) + "\n")
    missing = eda.summarize(root).missing.set_index("column")["missing"]
    assert missing["Label"] == 0 and missing["Label_2_Virus_category"] == 3 and missing["Label_1_Virus_category"] == 3


def test_not_a_data_set_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="known layout"):
        eda.summarize(tmp_path)


def test_charts_build_for_every_statistic(data):
    s = eda.summarize(data)
    figs = [eda_charts.class_balance(s), eda_charts.missing_values(s), eda_charts.qq_plot(s),
            eda_charts.mean_images(s), eda_charts.split_finding_heatmap(s), eda_charts.size_scatter(s)]
    figs += [eda_charts.distribution(s, c, k) for c in eda_charts.STAT_LABELS for k in ("histogram", "violin")]
    assert all(len(f.data) > 0 for f in figs)
    variants = eda.equalization_variants(np.asarray(xray_array(40), np.float32) / 255, size=64)
    assert set(variants) == {"none", "hist", "clahe"} and not np.array_equal(variants["none"], variants["hist"])
