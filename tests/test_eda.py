"""Data-set statistics: counts, source x class, missing vs not applicable, leaks, outliers, disk cache, charts."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import plotly.io as pio
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


def make_coronahack(root: Path, rows: list[tuple], provenance: bool = True) -> Path:
    """A tiny CoronaHack-layout data set of synthetic films.

    rows: (split TRAIN|TEST, Label, Label_1_Virus_category, Label_2_Virus_category, source); with
    ``provenance`` a provenance.csv names each image's source (patient = image).
    """
    img_dir = root / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset"
    meta = [",X_ray_image_name,Label,Dataset_type,Label_2_Virus_category,Label_1_Virus_category"]
    prov = ["X_ray_image_name,source,patient"]
    for i, (split, label, l1, l2, source) in enumerate(rows):
        (img_dir / split.lower()).mkdir(parents=True, exist_ok=True)
        Image.fromarray(xray_array(40, seed=i)).save(img_dir / split.lower() / f"{i}.jpeg")
        meta.append(f"{i},{i}.jpeg,{label},{split},{l2},{l1}")
        prov.append(f"{i}.jpeg,{source},p{i}")
    root.joinpath("Chest_Xray_Corona_Metadata.csv").write_text("\n".join(meta) + "\n")
    if provenance:
        root.joinpath("provenance.csv").write_text("\n".join(prov) + "\n")
    return root


# The data set's confound in miniature: paediatric normals and pneumonias from one hospital ("kids"),
# adult normals from another ("adults"), COVID-19 from a third ("covidpubs").
CONFOUNDED = ([("TRAIN", "Normal", "", "", "kids")] * 3 + [("TRAIN", "Normal", "", "", "adults")] * 3
              + [("TRAIN", "Pnemonia", "bacteria", "", "kids")] * 3
              + [("TRAIN", "Pnemonia", "Virus", "COVID-19", "covidpubs")] * 3
              + [("TEST", "Normal", "", "", "adults"), ("TEST", "Pnemonia", "Virus", "", "kids"),
                 ("TEST", "Pnemonia", "Virus", "COVID-19", "covidpubs")])


def test_empty_sub_categories_of_normal_films_are_not_applicable_not_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    root = make_coronahack(tmp_path / "ch", [("TRAIN", "Normal", "", "", "a"),
                                             ("TRAIN", "Pnemonia", "Virus", "COVID-19", "a"),
                                             ("TEST", "Normal", "", "", "a"), ("TEST", "Pnemonia", "", "", "a")])
    s = eda.summarize(root)
    m = s.missing.set_index("column")
    # Normal films have no pneumonia sub-category: not applicable. The last pneumonia has none given: missing.
    assert m.loc["Label_2_Virus_category", ["filled", "not_applicable", "missing"]].tolist() == [1, 2, 1]
    assert m.loc["Label_2_Virus_category", "share"] == 0.5  # of the 2 pneumonias, not of all 4 rows
    assert m.loc["Label_1_Virus_category", ["filled", "not_applicable", "missing"]].tolist() == [1, 2, 1]
    assert m.loc["Label", ["filled", "not_applicable", "missing"]].tolist() == [4, 0, 0]
    # What the chart shows: one bar segment per state, the missing one counts only the pneumonia.
    fig = eda_charts.missing_values(s)
    bars = {t.name: dict(zip(t.y, t.x)) for t in fig.data}
    assert bars["missing (applies, but empty)"]["Label_2_Virus_category"] == 1
    assert bars["not applicable (Normal film)"]["Label_2_Virus_category"] == 2
    assert bars["not applicable (Normal film)"]["Label"] == 0
    # One horizontal bar per column, named in full on the y axis (the two Label_* columns cannot look alike).
    assert {t.orientation for t in fig.data} == {"h"}
    assert list(fig.data[0].y) == ["X_ray_image_name", "Label", "Dataset_type", "Label_2_Virus_category",
                                   "Label_1_Virus_category"]


def test_source_by_class_names_the_confound(tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    s = eda.summarize(make_coronahack(tmp_path / "ch", CONFOUNDED))
    assert s.has_sources
    table = s.source_table()
    assert table.loc["kids", "normal train"] == 3 and table.loc["adults", "normal total"] == 4
    assert table.loc["covidpubs", "covid19 total"] == 4 and table.loc["kids", "covid19 total"] == 0
    assert table["total"].sum() == len(CONFOUNDED)
    text = "\n".join(s.source_findings())
    assert "every **covid19** image (4) comes from one source, **covidpubs**" in text
    assert "**normal** (7 images): adults 57%, kids 43%; none from covidpubs." in text
    assert "**adults** holds only normal images (4)" in text
    assert "**kids** holds only" not in text  # kids holds normals and pneumonias
    # The chart: one stacked trace per source; TEST and TRAIN panels; every image counted once.
    fig = eda_charts.source_class(s)
    assert {t.name for t in fig.data} == {"adults", "covidpubs", "kids"}
    assert sum(sum(t.y) for t in fig.data) == len(CONFOUNDED)
    assert {a.text for a in fig.layout.annotations} == {"TRAIN", "TEST"}
    covid_bars = [y for t in fig.data if t.name == "covidpubs" for x, y in zip(t.x, t.y) if x == "covid19"]
    assert sorted(covid_bars) == [1, 3]  # TEST and TRAIN


def test_a_sources_name_is_shown_as_it_is_in_the_findings(tmp_path, monkeypatch):
    """Source names come from the data set's own provenance.csv: Markdown in one is shown, not rendered."""
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    rows = [(split, label, virus, covid, "![x](http:e.example) *a*" if source == "adults" else source)
            for split, label, virus, covid, source in CONFOUNDED]
    text = "\n".join(eda.summarize(make_coronahack(tmp_path / "ch", rows)).source_findings())
    assert r"**\!\[x\](http\:e.example) \*a\*** holds only normal images (4)" in text
    assert "![x]" not in text


def test_a_sources_name_is_shown_as_it_is_in_the_charts(tmp_path, monkeypatch):
    """Plotly draws a few HTML tags in its labels, a link among them: a source's name (from the data set's own
    provenance.csv) written as one is shown as its characters in the legend (entities, which plotly decodes)."""
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    link = "<a href='http://evil.example/'>kids</a> & co"
    rows = [(split, label, virus, covid, link if source == "kids" else source)
            for split, label, virus, covid, source in CONFOUNDED]
    fig = eda_charts.source_class(eda.summarize(make_coronahack(tmp_path / "ch", rows)))
    assert "&lt;a href='http://evil.example/'&gt;kids&lt;/a&gt; &amp; co" in {t.name for t in fig.data}
    assert not any("<a" in t.name for t in fig.data)


def test_sources_unknown_without_provenance(tmp_path, data):
    assert not eda.summarize(data).has_sources and eda.summarize(data).source_findings() == []
    # class folders have no metadata file: the completeness table counts the source no provenance.csv gave as missing
    m = eda.summarize(data).missing.set_index("column")
    assert m.loc["source", ["filled", "missing"]].tolist() == [0, m.loc["filename", "filled"]]
    root = make_coronahack(tmp_path / "noprov", CONFOUNDED, provenance=False)
    s = eda.summarize(root)
    assert not s.has_sources and set(s.stats["source"]) == {"unknown"}
    # a provenance.csv whose source cells are blank names no source either
    root = make_coronahack(tmp_path / "blank", [(split, label, l1, l2, "") for split, label, l1, l2, _ in CONFOUNDED])
    assert not eda.summarize(root).has_sources


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextmanager
def _chart_tab():
    """A headless Chromium tab (1100x700) for drawing a chart; skips, saying why, when no browser is installed."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        exe = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
        try:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        except Exception as exc:  # no browser installed: say so instead of failing
            pytest.skip(f"no headless Chromium to render the chart: {exc}")
        try:
            yield browser.new_page(viewport={"width": 1100, "height": 700})
        finally:
            browser.close()


def test_mean_images_are_drawn_the_same_size_in_a_browser(tmp_path):
    """The review found the first class's mean image narrower than the others (all panels anchored to x1)."""
    classes = ("covid19", "normal", "pneumonia")
    summary = eda.DataSummary("r", "folders", "f", None, None, None,
                              mean_images={c: np.full((64, 64), 0.2 + 0.2 * k, np.float32)
                                           for k, c in enumerate(classes)})
    page = tmp_path / "mean.html"
    page.write_text(eda_charts.mean_images(summary).to_html(include_plotlyjs=True, default_width="1000px"))
    with _chart_tab() as tab:
        tab.goto(page.as_uri())
        tab.wait_for_selector(".heatmaplayer image")
        boxes = tab.eval_on_selector_all(
            ".heatmaplayer image", "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                   "return [r.width, r.height]; })")
    assert len(boxes) == 2 * len(classes)
    widths, heights = [round(w) for w, _ in boxes], [round(h) for _, h in boxes]
    assert max(widths) - min(widths) <= 1 and max(heights) - min(heights) <= 1, boxes
    assert all(abs(w - h) <= 1 for w, h in zip(widths, heights)), boxes  # square, as the 64x64 images are


def _layout_boxes(tab, figure, width: int, page) -> dict:
    """Render ``figure`` ``width`` px wide in ``tab``; bounding boxes (left, top, right, bottom) of what a reader
    sees: the figure, its title, legend, plot area and each axis tick label (with its text)."""
    page.write_text(figure.to_html(include_plotlyjs=True, default_width=f"{width}px"))
    tab.goto(page.as_uri())
    tab.wait_for_selector(".legend")
    return tab.evaluate("""() => {
        const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
        const ticks = sel => [...document.querySelectorAll(sel)].map(e => [e.textContent, box(e)]);
        return {figure: box(document.querySelector(".main-svg")), title: box(document.querySelector(".gtitle")),
                legend: box(document.querySelector(".legend")), plot: box(document.querySelector(".nsewdrag")),
                xticks: ticks(".xtick text"), yticks: ticks(".ytick text")};
    }""")


def _overlap(a, b) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


def _inside(inner, outer) -> bool:
    return inner[0] >= outer[0] - 1 and inner[1] >= outer[1] - 1 and inner[2] <= outer[2] + 1 and inner[3] <= outer[3] + 1


def test_counts_charts_are_readable_in_a_1024_px_window(tmp_path, monkeypatch):
    """The review at 1024 px found the completeness chart's title cut, its column names cut to "Label"/"Label" and
    covered by the legend; the class-balance counts were turned sideways and shrunk inside the bars."""
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    # Importing streamlit (the app tests) makes its template the default: a stub the app's page completes in the
    # browser, which drawn on its own overlaps every axis title. Plotly's own template stands in for that theme.
    monkeypatch.setattr(pio.templates, "default", "plotly")
    s = eda.summarize(make_coronahack(tmp_path / "ch", CONFOUNDED))
    names = ["X_ray_image_name", "Label", "Dataset_type", "Label_2_Virus_category", "Label_1_Virus_category"]
    with _chart_tab() as tab:
        # the page's main column at 1024 px (the completeness chart spans it), then half of it
        completeness = _layout_boxes(tab, eda_charts.missing_values(s), 560, tmp_path / "missing.html")
        balance = _layout_boxes(tab, eda_charts.class_balance(s), 270, tmp_path / "balance.html")
        counts_text = tab.eval_on_selector_all(".bartext", "els => els.map(e => e.getAttribute('transform'))")
    for boxes in (completeness, balance):
        assert _inside(boxes["title"], boxes["figure"]), boxes  # the whole title, not "filled, not applicab"
        labels = [b for _, b in boxes["xticks"] + boxes["yticks"]]
        assert all(_inside(b, boxes["figure"]) for b in labels), boxes
        assert not any(_overlap(boxes["legend"], b) for b in labels + [boxes["plot"], boxes["title"]]), boxes
    assert [text for text, _ in sorted(completeness["yticks"], key=lambda t: t[1][1])] == names  # top to bottom
    assert not any("rotate" in (t or "") for t in counts_text), counts_text  # counts read level
    assert [text for text, _ in balance["xticks"]] == ["covid19", "normal", "pneumonia"]


def test_not_a_data_set_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="known layout"):
        eda.summarize(tmp_path)


def test_charts_build_for_every_statistic(data):
    s = eda.summarize(data)
    figs = [eda_charts.class_balance(s), eda_charts.missing_values(s), eda_charts.qq_plot(s),
            eda_charts.source_class(s),
            eda_charts.mean_images(s), eda_charts.split_finding_heatmap(s), eda_charts.size_scatter(s)]
    figs += [eda_charts.distribution(s, c, k) for c in eda_charts.STAT_LABELS for k in ("histogram", "violin")]
    assert all(len(f.data) > 0 for f in figs)
    variants = eda.equalization_variants(np.asarray(xray_array(40), np.float32) / 255, size=64)
    assert set(variants) == {"none", "hist", "clahe"} and not np.array_equal(variants["none"], variants["hist"])
