"""Leave-one-source-out training: a source's TRAIN films are dropped, its TEST films kept; an unknown source is refused."""

from __future__ import annotations

import pandas as pd
import pytest

from covid_core.errors import ConfigError
from covid_core.datasets import without_source_in_training


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
