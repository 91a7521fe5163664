"""AppTest of the Explore data page: the source-by-class confound and not-applicable metadata (tiny synthetic data)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from app_helpers import APP
from test_eda import CONFOUNDED, make_coronahack

TIMEOUT = 60


def explore(folder) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("views/explore.py").run()
    at.text_input(key="explore_data").set_value(str(folder)).run()
    assert not at.exception, at.exception
    return at


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]


def test_explore_shows_which_classes_come_from_which_source(env):
    at = explore(make_coronahack(env / "ch", CONFOUNDED))
    assert "Images per class and source" in chart_titles(at)
    [chart] = [c for c in at.get("plotly_chart") if "source" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    traces = json.loads(chart.proto.spec)["data"]
    assert {t["name"] for t in traces} == {"adults", "covidpubs", "kids"}
    text = " ".join(m.value for m in at.markdown)
    assert "every **covid19** image (4) comes from one source, **covidpubs**" in text
    assert "**adults** holds only normal images (4)" in text
    assert any("learn the source" in c.value for c in at.caption)
    table = [df.value for df in at.dataframe if "covid19 total" in df.value.columns][0]
    assert table.loc["covidpubs", "covid19 total"] == 4 and table.loc["kids", "pneumonia total"] == 4
    assert not any("Sources unknown" in i.value for i in at.info)


def test_explore_says_sources_are_unknown_without_provenance(env):
    at = explore(make_coronahack(env / "ch", CONFOUNDED, provenance=False))
    assert any("Sources unknown" in i.value and "provenance.csv" in i.value for i in at.info)
    assert "Images per class and source" not in chart_titles(at)
    assert not any("holds only" in m.value for m in at.markdown)


def test_explore_counts_empty_sub_categories_of_normal_films_as_not_applicable(env):
    at = explore(make_coronahack(env / "ch", CONFOUNDED))
    table = [df.value for df in at.dataframe if "not applicable" in df.value.columns][0].set_index("column")
    # 7 normal films have no virus category because none applies; of the 8 pneumonias, 4 name none (missing).
    assert table.loc["Label_2_Virus_category", "not applicable"] == 7
    assert table.loc["Label_2_Virus_category", "missing"] == 4
    assert table.loc["Label_1_Virus_category", "missing"] == 0
    assert table.loc["Label_2_Virus_category", "missing share"] == 0.5  # of the 8 pneumonias, not of all 15 rows
    # Few, short headers so the share fits beside the counts at 1024 px; the caption says where a column applies.
    assert list(table.columns) == ["filled", "not applicable", "missing", "missing share"]
    assert any("not applicable" in c.value and "Label_2_Virus_category" in c.value and "non-Normal" in c.value
               for c in at.caption)


def test_explore_gives_wide_charts_the_page_width(env):
    """At 1024 px, half a page cut the completeness chart's column names and squeezed the scatter behind its legend."""
    at = explore(make_coronahack(env / "ch", CONFOUNDED))
    in_columns = {json.loads(c.proto.spec)["layout"]["title"]["text"] for col in at.columns
                  for c in col.get("plotly_chart")}
    assert "Metadata completeness" in chart_titles(at) and "Metadata completeness" not in in_columns
    assert "Intensity vs contrast (outliers marked)" in chart_titles(at)
    assert not in_columns & {"Intensity vs contrast (outliers marked)",
                             "Q-Q plot of pixel intensities vs a normal distribution"}
    [chart] = [c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["layout"]["title"]["text"]
               == "Metadata completeness"]
    bars = json.loads(chart.proto.spec)["data"]
    assert {t["orientation"] for t in bars} == {"h"}
    assert bars[0]["y"] == ["X_ray_image_name", "Label", "Dataset_type", "Label_2_Virus_category",
                            "Label_1_Virus_category"]
