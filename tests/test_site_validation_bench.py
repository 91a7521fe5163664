"""bench/site_validation.py's site: TEST's adult films, or a source the model never saw with TEST's COVID-19 films."""

from __future__ import annotations

import importlib
import sys

import pandas as pd

import covid_core.datasets
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
bench = importlib.import_module("site_validation")


class _Loaded:
    def __init__(self, table):
        self.table = table

    def for_target(self, target):
        assert target == "3class"
        return self.table


def _table():
    rows = [("train", "nih", "normal"), ("test", "nih", "pneumonia"), ("train", "cohen", "covid19"),
            ("test", "cohen", "covid19"), ("test", "cohen", "normal"), ("test", "figure1", "covid19"),
            ("test", "kermany", "normal"), ("train", "kermany", "pneumonia")]
    return pd.DataFrame(rows, columns=["split", "source", "label"]).assign(name=[f"f{i}" for i in range(len(rows))])


def test_the_unseen_site_is_every_film_of_that_source_and_tests_covid_films(monkeypatch):
    monkeypatch.setattr(covid_core.datasets, "load_dataset", lambda data: _Loaded(_table()))
    assert bench.site_table("d", "3class", "nih")["name"].tolist() == ["f0", "f1", "f3", "f5"]
    assert bench.site_table("d", "3class")["name"].tolist() == ["f1", "f3", "f4", "f5"]  # TEST, adult sources
