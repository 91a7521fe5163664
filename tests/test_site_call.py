"""The call in words under a negative verdict ("No pneumonia seen", "Pneumonia, not COVID-19-like") at a site: counted
by site validation, adapted by a head where that helps, and named by Diagnose only where the site's films confirm it.

At a hospital the network never saw, that call was right for about half of the normal and pneumonia films, while
the site-validated COVID-19 verdict beside it was good (docs/site-validation.md): before, a validated site showed
the call as settled without ever having checked it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import make_checkpoint, make_site_folder, png_bytes, xray_array
from covid_core.inference import Prediction
from covid_core.site import call_counts, pneumonia_step
from covid_core.site_file import MIN_PER_CLASS, Site, call_problem, load_site
from covid_core.verdict import headline, site_call_sentence

CLASSES = ["normal", "pneumonia", "covid19"]


def _calls(normal_right: int, normal_n: int, pneumonia_right: int, pneumonia_n: int, covid_called: int = 0) -> dict:
    return {"normal": {"normal": normal_right, "pneumonia": normal_n - normal_right, "covid19": covid_called},
            "pneumonia": {"normal": pneumonia_n - pneumonia_right, "pneumonia": pneumonia_right, "covid19": 0},
            "covid19": {"normal": 1, "pneumonia": 2, "covid19": 30}}


def test_the_call_is_confirmed_only_by_enough_films_of_each_kind_that_it_mostly_got_right():
    assert "did not count" in call_problem(None)  # a site file made before the call was counted
    assert "held 8 normal films and 40 of pneumonia" in call_problem(_calls(8, 8, 35, 40))
    no_pneumonia = {"normal": {"normal": 40, "pneumonia": 5, "covid19": 0}, "covid19": {"covid19": 30}}
    assert "held 45 normal films and 0 of pneumonia" in call_problem(no_pneumonia)  # a site of normals and COVID-19
    # the NIH films of a model trained without NIH, as counted by site validation before adaptation
    assert call_problem(_calls(0, 13, 43, 44)) == ("on its own labelled films the call was right for only 0 of 13 "
                                                   "normal films and 43 of 44 films of pneumonia of another cause")
    assert call_problem(_calls(30, 40, 32, 40)) == ""  # 75% and 80%
    assert call_problem(_calls(28, 40, 28, 40)) == ""  # 70% on average: the "poor" rule's line
    assert call_problem(_calls(27, 40, 28, 40)).startswith("on its own labelled films the call was right for only")
    # a film with a positive verdict is the COVID-19 verdict's to answer for, not the call's
    assert call_problem(_calls(30, 40, 32, 40, covid_called=200)) == ""
    assert call_problem(_calls(MIN_PER_CLASS, MIN_PER_CLASS, MIN_PER_CLASS, MIN_PER_CLASS)) == ""


def test_the_calls_counts_follow_the_verdict_and_leave_out_the_withheld_films():
    logits = np.array([[2.0, 1, 0], [0, 2, 1], [0, 1, 3], [2, 0, 1], [0, 2, 0]])
    labels = np.array([0, 1, 2, 2, 1])
    positive = np.array([False, False, True, False, True])  # the fourth: a COVID-19 film missed, called normal
    withheld = np.array([False, False, False, False, True])
    counts = call_counts(logits, positive, withheld, labels, CLASSES, covid=2)
    assert counts == {"normal": {"normal": 1, "pneumonia": 0, "covid19": 0},
                      "pneumonia": {"normal": 0, "pneumonia": 1, "covid19": 0},
                      "covid19": {"normal": 1, "pneumonia": 0, "covid19": 1}}
    assert call_counts(logits[:, :2], positive, withheld, labels % 2, ["negative", "positive"], covid=1) is None


def _site_features(n: int, seed: int, dims: int = 64):
    """Penultimate-like features of n normal and n pneumonia films (and a few COVID-19 ones): pneumonia shifted along
    8 dimensions; the network's own logits know nothing of it (what the network does at a hospital it never saw)."""
    rng = np.random.default_rng(seed)
    labels = np.array([0] * n + [1] * n + [2] * 10)
    pen = rng.normal(size=(len(labels), dims))
    pen[labels == 1, :8] += 1.0
    logits = rng.normal(size=(len(labels), 3))
    return logits, pen, labels, np.array([f"p{i}" for i in range(len(labels))])


def test_a_head_for_the_call_is_kept_only_where_it_beats_the_network_held_out():
    logits, pen, labels, patients = _site_features(40, seed=0)
    head, line, held = pneumonia_step(logits, pen, labels, patients, CLASSES)
    assert head is not None and line.startswith("the call between normal and pneumonia: a head on the frozen")
    y = labels[labels < 2] == 1
    assert ((held[labels < 2] >= 0.5) == y).mean() > 0.75  # held out, it tells most films apart
    informed = logits.copy()
    informed[:, 0] += 10 * (labels == 0)  # a network that already makes the call right
    informed[:, 1] += 10 * (labels == 1)
    head, line, held = pneumonia_step(informed, pen, labels, patients, CLASSES)
    assert head is None and held is None and "did not beat the network's call" in line
    few = np.r_[np.flatnonzero(labels == 0)[:MIN_PER_CLASS - 1], np.flatnonzero(labels > 0)]
    head, line, _ = pneumonia_step(logits[few], pen[few], labels[few], patients[few], CLASSES)
    assert head is None and f"needs at least {MIN_PER_CLASS} of each" in line


def _prediction(normal, pneumonia, covid, threshold=0.5, **kwargs) -> Prediction:
    probabilities = {"normal": normal, "pneumonia": pneumonia, "covid19": covid}
    return Prediction(probabilities=probabilities, label=max(probabilities, key=probabilities.get),
                      covid_positive=covid >= threshold, covid_probability=covid, threshold=threshold, ood_score=0.1,
                      ood_flagged=False, pixels_u8=np.zeros((4, 4), np.uint8), geometry=None, **kwargs)


def test_the_call_follows_a_sites_head_and_an_unconfirmed_call_is_not_named():
    assert _prediction(0.7, 0.2, 0.1).call == "normal"
    by_head = _prediction(0.7, 0.2, 0.1, pneumonia_probability=0.8)
    assert by_head.call == "pneumonia" and headline(by_head).title == "Pneumonia, not COVID-19-like"
    assert ";" not in headline(by_head).covid_line  # the network's own order of the two is not the verdict's business
    assert _prediction(0.2, 0.7, 0.1, pneumonia_probability=0.3).call == "normal"
    unconfirmed = _prediction(0.2, 0.7, 0.1, call_unconfirmed="its films held no pneumonia")
    h = headline(unconfirmed)
    assert h.title == "Not COVID-19-like" and h.tone == "negative"
    assert headline(_prediction(0.1, 0.2, 0.7, call_unconfirmed="x")).title == "COVID-19-like pneumonia"
    site = Site("St Elsewhere", calls=None)
    assert site_call_sentence(unconfirmed, site) == ("Whether this film shows pneumonia of another cause is not said "
                                                     "here: at St Elsewhere, its films held no pneumonia. Read the "
                                                     "film for it.")


def test_a_confirmed_call_states_how_often_it_was_right_at_the_site():
    site = Site("St Elsewhere", calls=_calls(43, 53, 45, 55))
    sentence = site_call_sentence(_prediction(0.7, 0.2, 0.1), site)
    assert sentence == ('At St Elsewhere, 79.6% (95% CI 67-88%) of its own labelled films called "No pneumonia seen" '
                        "were normal (43 of 54; the others: 10 pneumonia of another cause, 1 COVID-19).")
    assert site_call_sentence(_prediction(0.1, 0.2, 0.7), site) == ""  # a positive verdict: its PPV speaks
    assert site_call_sentence(_prediction(0.7, 0.2, 0.1), None) == ""
    two = Prediction(probabilities={"negative": 0.8, "positive": 0.2}, label="negative", covid_positive=False,
                     covid_probability=0.2, threshold=0.5, ood_score=0.1, ood_flagged=False,
                     pixels_u8=np.zeros((4, 4), np.uint8), geometry=None)
    assert site_call_sentence(two, Site("St Elsewhere")) == ""  # a two-class model's call is its verdict


@pytest.fixture
def model(tmp_path):
    return make_checkpoint(tmp_path / "model.pt")


def test_site_validation_counts_the_call_and_says_whether_diagnose_will_name_it(model, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    site = make_site_folder(tmp_path / "hospital", classes=("normal", "pneumonia", "covid19"))
    out = tmp_path / "site.json"
    r = subprocess.run([sys.executable, "-m", "covid_core", "validate-site", "--model", str(model), "--data",
                        str(site), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    for when in ("before", "after"):
        calls = report[when]["calls"]
        assert set(calls) == {"normal", "pneumonia", "covid19"}
        assert sum(sum(row.values()) for row in calls.values()) == report[when]["given"]["films"] - \
            report[when]["given"]["withheld"]
    assert any(line.startswith("the call between normal and pneumonia") for line in
               report["adapted"] + report["skipped"])
    assert "shipped model, labelled pneumonia: " in r.stdout and 'called "No pneumonia seen"' in r.stdout
    assert "Under a negative verdict Diagnose will" in r.stdout
    assert load_site(out, model).calls == report["after"]["calls"]


def _diagnose_at_site(tmp_path, monkeypatch, calls, parameters=None):
    from app_helpers import APP, app_env
    from test_app_diagnose import TIMEOUT, _all_text, _site_file

    tmp_path.mkdir()
    weights = app_env(tmp_path, monkeypatch, covid_threshold=1.0)  # every film negative at the stored threshold
    _site_file(weights / "tiny_cnn.pt", weights / "tiny_cnn.site.json", parameters=parameters,
               after={"sensitivity": {"value": 0.9, "low": 0.8, "high": 0.97},
                      "specificity": {"value": 0.85, "low": 0.75, "high": 0.93}, **({"calls": calls} if calls else {})})
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    return _all_text(at)


def test_diagnose_names_the_call_at_a_site_only_where_its_films_confirmed_it(tmp_path, monkeypatch):
    text = _diagnose_at_site(tmp_path / "old", monkeypatch, calls=None)  # a site file that never counted the call
    assert "Not COVID-19-like" in text and "COVID-19: negative" in text
    assert "No pneumonia seen" not in text and "Pneumonia, not COVID-19-like" not in text
    assert "Whether this film shows pneumonia of another cause is not said here: at St Elsewhere, its validation " \
           "did not count how often that call was right" in text
    assert "(see the first line)" not in text  # the first line no longer names pneumonia
    text = _diagnose_at_site(tmp_path / "new", monkeypatch, calls=_calls(43, 53, 45, 55))
    assert ("No pneumonia seen" in text) != ("Pneumonia, not COVID-19-like" in text)
    assert "Pneumonia probability at this site" not in text  # no head: the network's own order decides
    head = {"mean": [0.0] * 256, "scale": [1.0] * 256, "coef": [0.0] * 256, "intercept": 12.0}
    with_head = _diagnose_at_site(tmp_path / "head", monkeypatch, calls=_calls(43, 53, 45, 55),
                                  parameters={"pneumonia_head": head})
    assert "Pneumonia, not COVID-19-like" in with_head and "No pneumonia seen" not in with_head
    assert "Pneumonia probability at this site (the call's, from a head fitted on its films" in with_head
    assert "There a head fitted on its films makes the call between normal and pneumonia." in with_head
    assert "of its own labelled films called" in text and "Whether this film shows" not in text
    assert "(see the first line)" in text


def test_a_site_files_pneumonia_head_decides_the_call_under_a_negative_verdict(model, tmp_path):
    from covid_core.digests import file_sha256
    from covid_core.decode import decode_image
    from covid_core.inference import predict
    from covid_core.report import case_report_html
    from covid_core.site_file import SITE_FORMAT, load_classifier_at_site

    site = tmp_path / "site.json"
    film = decode_image(png_bytes(xray_array(64)), "chest.png")
    calls = _calls(40, 50, 42, 50)
    for intercept, called in ((12.0, "pneumonia"), (-12.0, "normal")):
        head = {"mean": [0.0] * 256, "scale": [1.0] * 256, "coef": [0.0] * 256, "intercept": intercept}
        site.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {
            "sha256": file_sha256(model)}, "parameters": {"threshold": 2.0, "pneumonia_head": head},
            "after": {"calls": calls}}))
        p = predict(load_classifier_at_site(model, site), film)
        assert p.covid_call == "negative" and p.call == called and not p.call_unconfirmed
        assert p.pneumonia_probability == pytest.approx(1 / (1 + np.exp(-intercept)))
        assert headline(p).title == {"pneumonia": "Pneumonia, not COVID-19-like", "normal": "No pneumonia seen"}[called]
        assert "There a head fitted on its films makes the call" in site_call_sentence(p, load_site(site, model))
        at_site = load_classifier_at_site(model, site)
        html = case_report_html(name="chest.png", image=film.pixels, prediction=p, classifier=at_site, model_label="m")
        assert "Pneumonia probability at this site (the call&#x27;s, from a head fitted on its films" in html
        assert f"<td>{'&gt;99.99%' if intercept > 0 else '&lt;0.01%'}</td>" in html  # 1 / (1 + e^-12) is not 100%


def test_the_call_is_checked_and_adapted_at_a_site_with_too_few_covid_films_to_adapt_the_verdict(model, tmp_path):
    """COVID-19 is rare at many hospitals now: a site's normal and pneumonia films still check the call."""
    from covid_core.checkpoint import load_classifier
    from covid_core.site import validate_site

    site = make_site_folder(tmp_path / "hospital", per_class=12, classes=("normal", "pneumonia"))
    make_site_folder(site, per_class=3, classes=("covid19",))
    report = validate_site(load_classifier(model), site)
    assert any(line.startswith("adapting the COVID-19 verdict: 3 COVID-19 and 24 other films") for line in
               report["skipped"])
    assert any(line.startswith("the call between normal and pneumonia") for line in
               report["adapted"] + report["skipped"])
    calls = report["after"]["calls"]
    assert sum(sum(row.values()) for row in calls.values()) == 27 - report["after"]["given"]["withheld"]


def test_predict_says_when_the_label_names_a_call_the_site_did_not_confirm(model, tmp_path):
    import subprocess
    import sys

    from conftest import REPO
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    films = make_site_folder(tmp_path / "hospital", per_class=2, classes=("normal", "pneumonia"))
    site = tmp_path / "site.json"
    for calls, said in ((None, True), (_calls(40, 50, 42, 50), False)):
        site.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {
            "sha256": file_sha256(model)}, "parameters": {"threshold": 2.0},  # every verdict negative
            "after": {"calls": calls} if calls else {}}))
        r = subprocess.run([sys.executable, "-m", "covid_core", "predict", "--model", str(model), str(films), "--site",
                            str(site), "--out", str(tmp_path / "p.csv")], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        line = ("label at St Elsewhere: for 4 film(s) with a negative verdict the label's call between normal and "
                "pneumonia is not confirmed there (its validation did not count how often that call was right")
        assert (line in r.stderr) == said, r.stderr


def test_a_two_class_covid_models_report_has_no_line_for_a_call_it_does_not_make():
    from covid_core.site import _adapt_call, _calls

    rng = np.random.default_rng(0)
    report = {"adapted": [], "skipped": [], "parameters": {}}
    labels = np.array([0, 1] * 15)
    scores = _adapt_call(report, rng.normal(size=(30, 2)), rng.normal(size=(30, 8)), labels,
                         np.arange(30).astype(str), ["negative", "positive"], 0)
    counts, _ = _calls(scores, labels == 1, np.zeros(30, bool), labels, ["negative", "positive"], 1)
    assert counts is None and report == {"adapted": [], "skipped": [], "parameters": {}}
