"""Site validation of a normal/pneumonia model (``--target pneumonia``): no COVID-19 class, so its call between
normal and pneumonia is what a hospital checks, adapts and confirms, on the command line and in the app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import APP, make_pneumonia_checkpoint, make_site_folder, png_bytes, site_film
from conftest import REPO
from covid_core.errors import ConfigError
from covid_core.site_file import CALL_ONLY, SITE_FORMAT, load_classifier_at_site, load_site

TIMEOUT = 60


@pytest.fixture
def model(tmp_path) -> Path:
    return make_pneumonia_checkpoint(tmp_path / "weights" / "pneumonia.pt")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "covid_core", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def _hospital(root: Path, per_class: int = 14) -> Path:
    """Normal films and films with an opacity; the latter are labelled COVID-19, which this model counts as
    pneumonia (covid_core.targets), so the site has both answers of its call."""
    return make_site_folder(root, per_class=per_class, classes=("normal", "covid19"))


def test_a_pneumonia_model_is_validated_on_its_call_and_the_site_file_makes_its_calls(model, tmp_path):
    out, films = tmp_path / "site.json", tmp_path / "films.csv"
    r = _cli("validate-site", "--model", model, "--data", _hospital(tmp_path / "hospital"), "--out", out,
             "--name", "St Mary's", "--films-out", films)
    assert r.returncode == 0, r.stderr
    assert "28 films of 28 patients used (14 normal and 14 pneumonia films)" in r.stdout
    assert "Diagnose will give this model's call here as validated: on your films given a call it was right for " \
           "14 of 14 normal films" in r.stdout
    report = json.loads(out.read_text())
    assert report["validates"] == CALL_ONLY and "target_sensitivity" not in report
    assert not {"sensitivity", "specificity", "auc"} & (set(report["before"]) | set(report["after"]))
    # The random network calls every film pneumonia; the opacity is in its features, so a head makes the call.
    assert report["before"]["calls"] == {"normal": {"normal": 0, "pneumonia": 14},
                                         "pneumonia": {"normal": 0, "pneumonia": 14}}
    assert report["after"]["calls"]["normal"]["normal"] == 14
    assert any(line.startswith("the call between normal and pneumonia: a head") for line in report["adapted"])
    assert "pneumonia_head" in report["parameters"] and "head" not in report["parameters"]
    rows = films.read_text().splitlines()
    assert rows[0].startswith("file,label,pneumonia probability (shipped),call (shipped),call right (shipped)")
    site = load_site(out, model)
    assert site.call_only and site.confirmed and site.call_problem == ""

    normal = tmp_path / "normal.png"
    normal.write_bytes(png_bytes(site_film("normal", 0, 0)))
    shipped = _cli("predict", "--model", model, normal)
    at_site = _cli("predict", "--model", model, "--site", out, normal)
    assert shipped.returncode == 0 and at_site.returncode == 0, shipped.stderr + at_site.stderr
    assert shipped.stdout.splitlines()[1].startswith("normal.png,pneumonia,")  # the network's own call
    assert at_site.stdout.splitlines()[1].startswith("normal.png,normal,")  # the site's head makes it ...
    head = float(at_site.stdout.splitlines()[1].split(",")[-2])  # ... and its score is given: site_pneumonia_score
    assert at_site.stdout.splitlines()[0].endswith(",site_pneumonia_score,withheld_why") and head < 0.5
    assert "not confirmed" not in at_site.stderr and "unconfirmed" not in at_site.stderr
    assert "label unconfirmed: no --site file validates this model's call" in shipped.stderr
    explained = _cli("explain", "--model", model, "--site", out, normal, "--out", tmp_path / "e.png")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith("No pneumonia seen\n")  # no caveat: the site's films confirm the call
    assert "Pneumonia probability at this site (the call's, from a head fitted on its films; the network's own is " \
           "above): 0.0" in explained.stdout
    assert "what the call is worth: At St Mary's, 100.0% (95% CI 78-100%) of its own labelled films called " \
           "\"No pneumonia seen\" were normal (14 of 14)" in explained.stdout
    assert "validation: Validated at St Mary's for the call between normal and pneumonia (made there by a head " \
           "fitted on its films)" in explained.stdout
    assert "explained class: normal (hirescam, the score of the head fitted on St Mary's films)" in explained.stdout
    evaluated = _cli("evaluate", "--model", model, "--site", out, "--data", tmp_path / "hospital", "--split", "all")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "the call at site St Mary's: 14 of 14 normal films called normal, 14 of 14 pneumonia" in evaluated.stdout


def test_too_few_films_leave_a_pneumonia_models_call_unconfirmed_and_every_reader_is_told(model, tmp_path):
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import predict
    from covid_core.report import case_report_html
    from covid_core.site import validate_site
    from covid_core.site_job import call_text, poor_site_warning
    from covid_core.verdict import validation_statement, verdict_caveat

    report = validate_site(load_classifier(model), _hospital(tmp_path / "hospital", per_class=6), name="Tiny")
    assert report["skipped"] == ["the call between normal and pneumonia: 6 normal and 6 pneumonia films; checking "
                                 "and adapting it needs at least 10 of each"]
    assert poor_site_warning(report).startswith("Your films do not confirm this model's call between normal and "
                                                "pneumonia: its labelled films given a call held 6 normal films")
    assert call_text(report).startswith("Diagnose will mark this model's call as unconfirmed here")
    out = tmp_path / "site.json"
    out.write_text(json.dumps(report))
    classifier = load_classifier_at_site(model, out)
    assert not classifier.site.confirmed
    p = predict(classifier, site_film("normal", 0, 0).astype("float32") / 255)
    assert verdict_caveat(p, classifier.site) == (
        "Unconfirmed: at Tiny, its labelled films given a call held 6 normal films and 6 of pneumonia (COVID-19 or "
        "another cause); checking the call needs at least 10 of each.")
    statement = validation_statement(classifier.site, p)
    assert "That does not confirm it: its labelled films given a call held 6" in statement
    html = case_report_html(name="film.png", image=site_film("normal", 0, 0), prediction=p, classifier=classifier,
                            model_label="m")  # the downloaded report says the same, in the verdict and beneath it
    assert "Unconfirmed: at Tiny, its labelled films given a call held 6 normal films" in html
    assert "Validated at Tiny for the call between normal and pneumonia" in html
    assert "only the call between normal and pneumonia was validated; the call is not confirmed there" in html
    r = _cli("predict", "--model", model, "--site", out, tmp_path / "hospital" / "normal")
    assert r.returncode == 0 and "this model's call between normal and pneumonia is not confirmed there" in r.stderr


def _site_file(model: Path, path: Path, **fields) -> Path:
    from covid_core.digests import file_sha256

    path.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere",
                                "checkpoint": {"sha256": file_sha256(model)}, "parameters": {}, "after": {}, **fields}))
    return path


def test_a_site_file_is_refused_for_a_model_whose_kind_of_output_it_did_not_validate(model, tmp_path):
    """A hand edit must not turn a COVID-19 model's site file into one that confirms it by its call alone, nor give
    a pneumonia model a file that never checked its call."""
    from app_helpers import make_checkpoint

    covid_model = make_checkpoint(tmp_path / "covid.pt")
    with pytest.raises(ConfigError, match="it validated only the call between normal and pneumonia, and the model "
                                          "gives COVID-19 verdicts"):
        load_classifier_at_site(covid_model, _site_file(covid_model, tmp_path / "a.json", validates=CALL_ONLY))
    with pytest.raises(ConfigError, match="it validated COVID-19 verdicts, and the model has no COVID-19 class"):
        load_classifier_at_site(model, _site_file(model, tmp_path / "b.json"))
    with pytest.raises(ConfigError, match="is damaged .its 'validates' is not"):
        load_classifier_at_site(model, _site_file(model, tmp_path / "c.json", validates="everything"))
    assert load_classifier_at_site(model, _site_file(model, tmp_path / "d.json", validates=CALL_ONLY)).site.call_only


def test_the_app_validates_a_pneumonia_model_and_diagnose_then_gives_its_call_as_validated(tmp_path, monkeypatch):
    from app_helpers import app_env
    from test_app_diagnose import _all_text
    from test_app_pages import _wait_for_site_report, page

    weights = app_env(tmp_path, monkeypatch)
    (weights / "tiny_cnn.pt").unlink()
    make_pneumonia_checkpoint(weights / "pneumonia.pt")
    at = page("models")
    assert any("Diagnose marks this model's calls between normal and pneumonia unconfirmed until" in i.value
               for i in at.info)
    at = page("validate")
    at.text_input(key="site_folder").set_value(str(_hospital(tmp_path / "hospital", per_class=12)))
    at.text_input(key="site_name").set_value("St Mary's")
    at.button[0].click().run()
    assert not at.exception, at.exception
    _wait_for_site_report(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["", "normal films called normal", "pneumonia films called pneumonia",
                                   "balanced accuracy", "calibration error", "no call"]
    assert table["normal films called normal"].tolist()[0] == "0 of 12 (0%)"
    text = _all_text(at)
    assert "Diagnose will give this model's call here as validated" in text
    assert not at.get("plotly_chart") or len(at.get("plotly_chart")) == 1  # calibration only: no COVID-19 ROC
    at.button(key="site_activate").click().run()
    assert not at.exception, at.exception
    assert any("with every call and makes the call as adapted here" in s.value for s in at.success)
    assert load_site(weights / "pneumonia.site.json", weights / "pneumonia.pt").call_only

    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(site_film("normal", 0, 0)),
                                                   "image/png")).run()
    assert not at.exception, at.exception
    text = _all_text(at)
    assert "No pneumonia seen" in text and "Unconfirmed" not in text
    [statement] = [s.value for s in at.success if s.value.startswith("Validated at St Mary's")]  # not a warning
    assert statement.startswith("Validated at St Mary's for the call between normal and pneumonia")
    assert "Pneumonia probability at this site (the call's, from a head fitted on its films" in text


def test_the_call_bench_counts_every_film_of_a_pneumonia_model_that_is_not_withheld(model, tmp_path):
    """bench/site_call.py's half B figures: a model without a COVID-19 verdict has no negative verdict to wait for."""
    import importlib

    sys.path.insert(0, str(REPO / "bench"))
    bench = importlib.import_module("site_call")
    films = importlib.import_module("site_validation").prepared
    from covid_core.checkpoint import load_classifier

    folder = _hospital(tmp_path / "hospital", per_class=5)
    classifier = load_classifier(model)
    assert bench.call_rates(classifier, films(classifier, folder)) == ((0, 5), (5, 5))  # every film called pneumonia
    classifier.ood = {**classifier.ood, "threshold": -1.0}  # every film unlike the training X-rays: none counts
    assert bench.call_rates(classifier, films(classifier, folder)) == ((0, 0), (0, 0))


def test_a_pneumonia_models_card_says_its_calls_are_unconfirmed_until_validated_not_that_verdicts_are_withheld(model):
    import torch

    from covid_core.cards.classifier import known_limits

    limits = known_limits(torch.load(model, weights_only=True))
    assert "until then its calls are marked unconfirmed." in limits and "no COVID-19 verdict" not in limits
