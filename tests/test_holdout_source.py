"""Leave-one-source-out training: a source's TRAIN films are dropped, its TEST films kept; an unknown source is refused."""

from __future__ import annotations

import pandas as pd
import pytest

from covid_core.errors import ConfigError
from covid_core.datasets import holdout_films, holdout_parts, without_source_in_training


def _table():
    return pd.DataFrame({"split": ["train", "train", "test", "train", "test"],
                         "source": ["nih", "kermany", "nih", "nih", "kermany"], "label": list("abcde")})


def test_the_held_out_source_leaves_training_but_stays_in_test():
    kept = without_source_in_training(_table(), "nih")
    assert kept["label"].tolist() == ["b", "c", "e"]
    assert ((kept["source"] == "nih") & (kept["split"] == "train")).sum() == 0
    assert without_source_in_training(_table(), "").equals(_table())


def test_an_unknown_source_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="no film of source 'cohen' to hold out; the sources here are: kermany, nih"):
        without_source_in_training(_table(), "cohen")


def _classes():
    return pd.DataFrame({"split": ["train", "train", "train", "test", "train", "train", "train"],
                         "source": ["cohen", "cohen", "figure1", "cohen", "nih", "figure1", "cohen"],
                         "patient": ["c1", "c2", "f1", "c3", "n1", "f2", "c1"],
                         "label": ["normal", "covid19", "normal", "normal", "normal", "covid19", "covid19"]})


def test_one_class_of_a_source_and_several_sources_can_be_held_out():
    """``cohen:normal,figure1:normal`` drops from TRAIN those sources' patients who have a normal film, with all
    their films (patient c1's COVID-19 film too); other patients' COVID-19 films, TEST's normals and another
    source's normals stay."""
    kept = without_source_in_training(_classes(), "cohen:normal, figure1:normal")
    assert list(zip(kept["patient"], kept["label"], kept["split"])) == [
        ("c2", "covid19", "train"), ("c3", "normal", "test"), ("n1", "normal", "train"), ("f2", "covid19", "train")]
    both = without_source_in_training(_classes(), "cohen,nih")
    assert list(both["patient"]) == ["f1", "c3", "f2"]


def test_a_class_a_source_does_not_have_is_refused_with_its_classes():
    with pytest.raises(ConfigError, match="source 'nih' has no 'covid19' film to hold out; its classes are: normal"):
        without_source_in_training(_classes(), "cohen:normal,nih:covid19")


def test_the_films_a_holdout_names_are_its_class_films_of_both_splits_unless_widened_to_their_patients():
    """What a held-out model is tested on (the benches) is the named class's films; what training leaves out is
    every film of their patients."""
    assert holdout_parts(" cohen:normal, nih ,") == [("cohen", "normal"), ("nih", "")]
    assert holdout_films(_classes(), "cohen:normal").tolist() == [True, False, False, True, False, False, False]
    assert holdout_films(_classes(), "cohen:normal", whole_patients=True).tolist() == [
        True, False, False, True, False, False, True]
    assert holdout_films(_classes(), "figure1").tolist() == [False, False, True, False, False, True, False]
    assert not holdout_films(_classes(), "").any()
