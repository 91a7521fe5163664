"""What a model was trained on, as its checkpoint records it and the card, the pages and the report tell it: a model
trained on a hospital's own films is never described as trained on the public collections."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import APP, app_env, png_bytes, xray_array
from conftest import write_provenance
from covid_core.cards.classifier import card_markdown
from covid_core.checkpoint import atomic_save, load_checkpoint_dict
from covid_core.datasets import load_dataset
from covid_core.training import TrainConfig, run
from covid_core.training_data import PUBLIC_NOT_VALIDATED, not_validated_statement, training_data
from covid_core.verdict import positive_verdict_limits, validation_statement

PUBLIC = {"name": "coronahack-mini", "layout": "coronahack",
          "sources": {"cohen": 300, "figure1": 40, "kermany": 1400, "nih": 800}}


@pytest.mark.parametrize("metadata,public,name", [
    ({"training_data": PUBLIC}, True, "coronahack-mini"),
    ({"training_data": {**PUBLIC, "name": "my-subset"}}, True, "my-subset"),  # the public sources under a new name
    ({"training_data": {**PUBLIC, "sources": {"nih": 10, "unknown": 3}}}, False, "coronahack-mini"),  # 3 not public
    ({"training_data": {**PUBLIC, "sources": {"nih": 10, "st-elsewhere": 40}}}, False, "coronahack-mini"),
    ({"training_data": {"name": "coronahack-mini", "layout": "folders", "sources": {"unknown": 50}}}, False,
     "coronahack-mini"),  # a folder of that name whose films name no source: not known to be the public set
    ({"train_config": {"data": "../shared/data/coronahack-mini"}}, True, "coronahack-mini"),  # before the record
    ({"train_config": {"data": "/srv/films/st-elsewhere"}}, False, "st-elsewhere"),
    ({"train_config": {"data": 12}}, False, ""),
    ({}, False, ""),
    ({"training_data": {"name": ["x"], "layout": 3, "sources": {"nih": "many", "cohen": -1}}}, False, ""),
])
def test_what_a_checkpoint_was_trained_on_and_whether_that_is_the_public_collections(metadata, public, name):
    data = training_data(metadata)
    assert (data.public, data.name) == (public, name)
    statement = not_validated_statement(metadata)
    assert (statement == PUBLIC_NOT_VALIDATED) == public
    if not public:
        assert "public collections" not in statement and "Not validated at your hospital" in statement
        assert (f'the TEST films of "{name}"' if name else "the TEST films of its training data") in statement


def test_a_model_trained_on_a_hospitals_films_is_described_as_that(folder_dataset, tmp_path):
    """Trained on a class-folder data set with no provenance: the checkpoint records it, and the card, the
    command that reproduces it and the statement beside a verdict name it instead of the public collections."""
    best = run(TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=4, image_size=32,
                           augment=False, val_fraction=0.2, ema_decay=0.0, runs_dir=str(tmp_path / "runs"),
                           run_id="hospital"), progress=False)
    ckpt = load_checkpoint_dict(best)
    assert ckpt["training_data"] == {"name": folder_dataset.name, "layout": "folders", "sources": {"unknown": 48}}
    card = card_markdown(ckpt, "x.pt", "weights/x.pt")
    assert f"- Data set: `{folder_dataset.name}`, folders layout, fingerprint `{ckpt['data_fingerprint']}`" in card
    limits = card[card.index("## Known limits"):]
    assert f"Trained and tested on `{folder_dataset.name}`" in limits
    assert "cannot measure whether the model reads the hospital rather than the disease" in limits
    assert "coronahack" not in limits and "Kermany" not in limits and "NIH" not in limits
    assert f"python train.py --data {folder_dataset} " in card  # where it was trained, not the public set's place
    statement = validation_statement(None, None, ckpt)
    assert f'the TEST films of "{folder_dataset.name}"' in statement and "public collections" not in statement


def test_sources_named_in_a_hospitals_provenance_are_recorded_and_not_taken_for_the_public_ones(folder_dataset,
                                                                                                 tmp_path):
    write_provenance(folder_dataset, lambda i, name: "nih" if i % 2 else "ward-b")
    counts = load_dataset(folder_dataset).table["source"].value_counts()
    best = run(TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=4, image_size=32,
                           augment=False, val_fraction=0.2, ema_decay=0.0, runs_dir=str(tmp_path / "runs"),
                           run_id="sources"), progress=False)
    ckpt = load_checkpoint_dict(best)
    assert ckpt["training_data"]["sources"] == {"nih": counts["nih"], "ward-b": counts["ward-b"]}
    assert sum(counts) == 48 and min(counts) > 0
    card = card_markdown(ckpt, "x.pt", "weights/x.pt")
    assert f"- Films per source: nih {counts['nih']}, ward-b {counts['ward-b']}" in card and "several sources" in card
    # a false positive from this data set's "nih" is not described as one of NIH Clinical Center's adults
    per_source = {"nih": {"confusion": {"normal": {"normal": 1, "pneumonia": 0, "covid19": 4}}}}
    metadata = {"target": "3class", "training_data": ckpt["training_data"],
                "metrics": {"test": {"n": 5, "per_class": {"covid19": {"support": 0}}, "per_source": per_source}}}
    groups = positive_verdict_limits(metadata, {"value": 0.5})[-1]
    assert "4 of 5 normal films from source 'nih'" in groups and "NIH Clinical Center" not in groups
    public = positive_verdict_limits({**metadata, "training_data": PUBLIC}, {"value": 0.5})[-1]
    assert "4 of 5 normal films from source 'nih' (adult films, NIH Clinical Center)" in public


@pytest.mark.parametrize("record,expected,absent", [
    ({"name": "st-elsewhere-2025", "layout": "folders", "sources": {"unknown": 900}},
     'the TEST films of "st-elsewhere-2025"', "public collections"),
    (PUBLIC, "public collections", "st-elsewhere"),
])
def test_diagnose_says_where_the_figures_beside_a_verdict_come_from(tmp_path, monkeypatch, record, expected, absent):
    weights = app_env(tmp_path, monkeypatch)
    path = weights / "tiny_cnn.pt"
    ckpt = load_checkpoint_dict(path)
    ckpt["training_data"] = record
    atomic_save(ckpt, path)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    statement = [w.value for w in at.warning if "Not validated at your hospital" in w.value]
    assert len(statement) == 1 and expected in statement[0] and absent not in statement[0]
    assert any(f"TEST macro AUC 0.900 on {record['name']}" in c.value for c in at.caption)  # where it was measured


def test_names_from_the_data_set_are_shown_as_they_are_in_the_card():
    """A data folder, a film or a source named like Markdown (backticks, a link) stays literal text in the card as
    rendered (CommonMark): no link, and the whole name inside its code span."""
    import tempfile
    from pathlib import Path

    from markdown_it import MarkdownIt

    from app_helpers import make_checkpoint

    hostile = "a`[x](http://evil.example)`b"
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = load_checkpoint_dict(make_checkpoint(Path(tmp) / "m.pt"))
    ckpt["training_data"] = {"name": hostile, "layout": "[l](http://evil.example)",
                             "sources": {"[s](http://evil.example)": 3, "``": 2}, "unreadable_n": 2,
                             "unreadable": ["``x``.png", "[f](http://evil.example).png"]}
    ckpt["train_config"] = {**ckpt["train_config"], "data": "/srv/```/" + hostile, "skip_unreadable": True}
    html = MarkdownIt("commonmark").render(card_markdown(ckpt, "m.pt", "weights/m.pt"))
    assert "<a " not in html and "evil.example" in html
    assert f"<code>{hostile}</code>" in html
    assert "<code>``x``.png</code>" in html
    assert html.count("<pre><code>") == 1 and "/srv/```/a`[x](http://evil.example)`b" in html
