"""bench/shortcut_ablation.py: the leave-one-source-out table puts each figure under its own heading."""

from __future__ import annotations

import importlib
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
ablation = importlib.import_module("shortcut_ablation")

_FIGURES = {"unseen_n": 653, "unseen_normal_vs_pneumonia": 0.456, "unseen_normals_called_covid": 0.919,
            "unseen_withheld": 0.381, "unseen_wrong_positive": 0.536, "test_nih_normal_vs_pneumonia": 0.366,
            "nih_normals_called_covid": 0.931, "test_kermany_normal_vs_pneumonia": 0.997, "test_macro_auc": 0.847,
            "covid_sensitivity": 0.933, "covid_ppv": 0.344, "covid_fp": 107, "probe_accuracy": 0.934}


def _cells(table: str, line: int) -> list[str]:
    return [c.strip() for c in table.splitlines()[line].strip("|").split("|")]


def test_the_new_hospital_auc_sits_under_its_heading_and_rows_without_it_say_na():
    table = ablation.holdout_table({"group_without_nih": {**_FIGURES, "unseen_normal_vs_covid": 0.52155},
                                    "group_without_kermany": dict(_FIGURES),  # read before the figure existed
                                    "group": {"test_macro_auc": 0.954}})  # not held out: no row
    head, with_it, without = _cells(table, 0), _cells(table, 2), _cells(table, 3)
    assert len(table.splitlines()) == 4
    assert len(with_it) == len(head) == len(without)
    column = head.index("unseen normals vs TEST COVID-19 AUC")
    assert with_it[column] == "0.522" and without[column] == "n/a"
    assert with_it[head.index("unseen normal vs pneumonia AUC")] == "0.456"
    assert with_it[0] == "group_without_nih" and without[0] == "group_without_kermany"
