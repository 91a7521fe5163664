"""Site validation: validate-site on a hospital's labelled films, the site file, --site, and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_helpers import make_checkpoint, make_site_folder, xray_array
from conftest import REPO
from covid_core.checkpoint import load_classifier
from covid_core.errors import ConfigError, DatasetError
from covid_core.site import MIN_PER_CLASS, _folds, _head_scores, head_operating_point, temperature_step, validate_site
from covid_core.site_file import load_site


@pytest.fixture
def model(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "model.pt")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "covid_core", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_validate_site_reports_before_and_after_with_intervals_and_writes_a_plain_site_file(model, tmp_path):
    site = make_site_folder(tmp_path / "hospital")
    out = tmp_path / "site.json"
    r = _cli("validate-site", "--model", model, "--data", site, "--out", out, "--name", "St Elsewhere")
    assert r.returncode == 0, r.stderr
    assert "before: COVID-19 sensitivity" in r.stdout and "95% CI" in r.stdout and "after:" in r.stdout
    assert "28 films of 28 patients used (14 normal and 14 COVID-19 films)" in r.stdout
    assert "within +/-5 points (95% interval), label about " in r.stdout  # 14 films of each: too few to know closely
    report = json.loads(out.read_text())
    assert report["site"] == "St Elsewhere" and report["counts"] == {"normal": 14, "covid19": 14}
    assert len(report["checkpoint"]["sha256"]) == 64 and report["films_used"] == 28 and report["patients"] == 28
    for when in ("before", "after"):
        f = report[when]["sensitivity"]
        assert f["value"] is not None and f["low"] <= f["value"] <= f["high"]
    assert "cross-validation" in report["after"]["estimated_by"]
    assert report["adapted"] or report["skipped"]  # every step is accounted for
    text = out.read_text()
    assert "covid190.png" not in text and "normal0.png" not in text  # no file names, images or patients
    # The patch is visible to the frozen random network's features: a head learns it where the shipped random
    # threshold cannot, so the operating point is adapted and the held-out estimate improves.
    assert any(a.startswith("operating point") for a in report["adapted"]), report
    assert report["after"]["auc"]["value"] > report["before"]["auc"]["value"]


def test_validate_site_can_list_every_film_for_the_sites_own_review(model, tmp_path):
    """--films-out: one row per film with its label, score, verdict and whether it was right, shipped and after
    adaptation; the file names go there, never into the site file."""
    import pandas as pd

    site = make_site_folder(tmp_path / "hospital")
    out, films_out = tmp_path / "site.json", tmp_path / "review" / "films.csv"
    r = _cli("validate-site", "--model", model, "--data", site, "--out", out, "--films-out", films_out)
    assert r.returncode == 0, r.stderr
    assert "(28 films)" in r.stdout and r.stdout.startswith('site "hospital": 28 films')
    films = pd.read_csv(films_out, keep_default_na=False)
    assert len(films) == 28 and set(films["file"]) == {f"{c}/{c}{i}.png" for c in ("normal", "covid19")
                                                        for i in range(14)}
    assert (films["label"] == films["file"].str.split("/").str[0]).all()
    for when in ("shipped", "after adaptation"):
        verdict, right = films[f"verdict ({when})"], films[f"right ({when})"]
        assert set(verdict) <= {"positive", "negative", "withheld"} and films[f"score ({when})"].between(0, 1).all()
        given = verdict != "withheld"
        truth = np.where(films["label"] == "covid19", "positive", "negative")
        assert (right[given] == np.where(verdict[given] == truth[given], "yes", "no")).all()
        assert (right[~given] == "").all()
    report = json.loads(out.read_text())  # the rows agree with the report's counts
    assert ((films["verdict (after adaptation)"] == "positive") & (films["label"] == "covid19")).sum() == \
        report["after"]["given"]["counts"]["tp"]
    assert "covid190.png" not in out.read_text()
    r = _cli("validate-site", "--model", model, "--data", site, "--out", out, "--films-out", tmp_path / "films.txt")
    assert r.returncode == 2 and "must end in .csv" in r.stderr and "Traceback" not in r.stderr


def test_predict_and_evaluate_apply_the_site_file(model, tmp_path):
    site = make_site_folder(tmp_path / "hospital")
    out = tmp_path / "site.json"
    assert _cli("validate-site", "--model", model, "--data", site, "--out", out).returncode == 0
    preds = tmp_path / "p.csv"
    r = _cli("predict", "--model", model, site, "--out", preds, "--site", out)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 28 and {row["site"] for row in rows} == {"hospital"}
    # the verdict is the site's score at the site's threshold, both given beside the model's own probabilities
    given = [row for row in rows if row["covid_verdict"] in ("positive", "negative")]
    assert given and all((row["covid_verdict"] == "positive") == (
        float(row["site_covid_score"]) >= float(row["site_threshold"])) for row in given)
    assert {row["site_threshold"] for row in rows} == {f'{json.loads(out.read_text())["parameters"]["threshold"]:.6f}'}
    # validated here: verdicts are given (withheld only for a film the familiarity check flags)
    assert all((row["covid_verdict"] == "withheld") == (row["ood_flagged"] == "true") for row in rows)
    assert {row["covid_verdict"] for row in rows} & {"positive", "negative"}
    assert all(bool(row["withheld_why"]) == (row["covid_verdict"] == "withheld") for row in rows)
    assert list(rows[0])[-5:] == ["site", "site_covid_score", "site_threshold", "site_pneumonia_score", "withheld_why"]
    # the label column names the call's class, which agrees with the verdict given
    assert all((row["label"] == "covid19") == (row["covid_verdict"] == "positive") for row in rows
               if row["covid_verdict"] in ("positive", "negative")), [(r["label"], r["covid_verdict"]) for r in rows]
    r = _cli("evaluate", "--model", model, "--data", site, "--site", out)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["site"] == "hospital" and result["at_threshold"]["threshold"] == json.loads(out.read_text())[
        "parameters"].get("threshold", result["at_threshold"]["threshold"])
    # how the call did there, counted as at validation (every film: evaluate withholds none)
    assert set(result["site_calls"]) == {"normal", "covid19"}
    assert sum(sum(row.values()) for row in result["site_calls"].values()) == 28
    assert "the call under a negative verdict at site hospital: " in r.stdout
    assert "(not confirmed by these films: its labelled films given a negative verdict held" in r.stdout


def test_predict_says_when_the_site_file_shows_the_model_doing_poorly_there(model, tmp_path):
    """Made active despite the Validate page's warning, a site file whose own figures are poor is named so with the
    verdicts it gives; a site file whose figures are good is not."""
    site = make_site_folder(tmp_path / "hospital", per_class=4)
    out = tmp_path / "site.json"
    assert _cli("validate-site", "--model", model, "--data", site, "--out", out).returncode == 0
    report = json.loads(out.read_text())
    cases = {"poor": (0.55, 0.6, 0.62, 0.4), "good": (0.9, 0.85, 0.93, 0.7), "too few": (0.875, 0.9, 0.93, 0.53)}
    for name, (sens, spec, auc, sens_low) in cases.items():
        figures = {"sensitivity": {"value": sens, "low": sens_low, "high": 0.98},
                   "specificity": {"value": spec, "low": spec - 0.1, "high": 0.99}, "auc": {"value": auc}}
        edited = tmp_path / f"{name}.json"
        edited.write_text(json.dumps({**report, "after": figures}))
        assert bool(load_site(edited, model).poor) == (name == "poor")
        assert load_site(edited, model).confirmed == (name == "good")
        r = _cli("predict", "--model", model, site, "--out", tmp_path / f"{name}.csv", "--site", edited)
        assert r.returncode == 0, r.stderr
        note = ("covid_verdict at hospital: on the site's own labelled films, even after adaptation, its COVID-19 "
                "score ranks them with an AUC of 0.62 and its verdicts have sensitivity 55% and specificity 60%, so "
                "many of these verdicts are wrong either way")
        assert (note in r.stderr) == (name == "poor"), r.stderr
        few = ("covid_verdict at hospital: the site's labelled films are too few to confirm these verdicts: its "
               "sensitivity of 88% could be as low as 53% (95% interval); label more films and validate again")
        assert (few in r.stderr) == (name == "too few"), r.stderr
    # a run in which no film gets a verdict has no verdicts to warn about
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "film.png").write_bytes(b"\x89PNG\r\n\x1a\n not a film")
    r = _cli("predict", "--model", model, broken, "--out", tmp_path / "broken.csv", "--site", tmp_path / "poor.json")
    assert "film.png" in r.stderr and "covid_verdict at hospital" not in r.stderr, r.stderr


def test_a_site_file_for_another_model_or_not_json_is_refused(model, tmp_path):
    site = make_site_folder(tmp_path / "hospital")
    out = tmp_path / "site.json"
    assert _cli("validate-site", "--model", model, "--data", site, "--out", out).returncode == 0
    other = make_checkpoint(tmp_path / "other.pt", seed=1)
    with pytest.raises(ConfigError, match="made for another model"):
        load_site(out, other)
    r = _cli("predict", "--model", other, site, "--site", out)
    assert r.returncode == 2 and "made for another model" in r.stderr and "Traceback" not in r.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_site(junk, model)
    junk.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="not a site file"):
        load_site(junk, model)
    junk.write_text(json.dumps({**json.loads(out.read_text()), "checkpoint": 5}))  # found by fuzzing: AttributeError
    with pytest.raises(ConfigError, match="made for another model"):
        load_site(junk, model)


@pytest.mark.parametrize("parameters, after, reason", [
    ({"threshold": "abc"}, {}, "threshold 'abc' is not a number"),
    ({"threshold": None, "temperature": "1.5"}, {}, "temperature '1.5' is not a positive number"),
    ({"temperature": -1}, {}, "temperature -1 is not a positive number"),
    ({"head": {"mean": [0.0], "scale": [1.0], "coef": "x", "intercept": 0.0}, "threshold": 0.5}, {}, "its head is not"),
    ({"head": {"mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0}}, {}, "its head has no threshold"),
    ({"ood_means": {"penultimate": "x"}}, {}, "its familiarity means are not"),
    ({}, {"sensitivity": {"value": "high"}}, "its sensitivity is not a share"),
    # found by fuzzing: 1e308 made the head's probability NaN, read as a negative verdict; a number past int64 was
    # not a number to numpy; a figure without its interval escaped the too-few-films warning; a KeyError
    ({"head": {"mean": [1e308], "scale": [1.0], "coef": [1.0], "intercept": 0.0}, "threshold": 0.5}, {},
     "its head is not"),
    ({"head": {"mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 10**30}, "threshold": 0.5}, {},
     "its head is not"),
    ({}, {"sensitivity": {"value": 0.9, "low": 0.5}}, "its sensitivity has no 95% interval around it"),
    ({}, {"given": {"sensitivity": {"value": 0.9}, "films": "x", "withheld": 1}}, "count of films given a verdict"),
    ({}, {"given": {"sensitivity": {"value": 0.9}, "films": 3, "withheld": 5}}, "count of films given a verdict"),
    ({}, {"counts": {"tp": 3, "fn": "1", "fp": 0, "tn": 2}}, "its verdict counts are not four whole numbers"),
    ({}, {"counts": {"tp": 10**30, "fn": 1, "fp": 0, "tn": 2}}, "its verdict counts are not four whole numbers"),
    ("x", {}, "its parameters or figures are not a JSON object"),
    ({}, {"calls": {"normal": {"normal": "3"}}}, "its counts of the calls are not whole numbers"),
    ({}, {"calls": [1, 2]}, "its counts of the calls are not whole numbers"),
    ({"pneumonia_head": {"mean": [0.0], "scale": [0.0], "coef": [1.0], "intercept": 0.0}}, {},
     "its pneumonia head is not"),
])
def test_a_damaged_site_file_is_refused_with_the_reason_not_a_traceback(model, tmp_path, parameters, after, reason):
    """A site file is plain JSON beside the model: a hand edit or a broken copy must not crash a verdict."""
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    site = tmp_path / "site.json"
    site.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere", "parameters": parameters,
                                "checkpoint": {"sha256": file_sha256(model)}, "after": after}))
    with pytest.raises(ConfigError, match="is damaged") as caught:
        load_site(site, model)
    assert reason in str(caught.value)
    films = make_site_folder(tmp_path / "hospital", per_class=1)
    r = _cli("predict", "--model", model, films, "--site", site)
    assert r.returncode == 2 and reason in r.stderr and "Traceback" not in r.stderr


def test_a_site_file_whose_head_or_means_do_not_fit_the_model_is_refused(model, tmp_path):
    import torch

    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT, Site, _misfit, load_classifier_at_site

    site = tmp_path / "site.json"
    site.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {
        "sha256": file_sha256(model)}, "parameters": {
            "head": {"mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0}, "threshold": 0.5,
            "head_threshold_from": "held-out scores"}}))
    with pytest.raises(ConfigError, match="does not fit this model") as caught:
        load_classifier_at_site(model, site)
    assert "its head takes 1 features, the model gives 256" in str(caught.value)
    # class means for the familiarity reference: one per part of it, each as long as that part's features
    classifier = load_classifier(model)
    classifier.ood = {**classifier.ood, "parts": [{"name": "penultimate", "means": torch.zeros(3, 256)}]}
    assert "a part ('elsewhere') the model does not have" in _misfit(Site("s", ood_means={"elsewhere": [[0.0]]}),
                                                                     classifier)
    assert "means for 'penultimate' are not 256 long" in _misfit(Site("s", ood_means={"penultimate": [[0.0]]}),
                                                                 classifier)
    assert _misfit(Site("s", ood_means={"penultimate": [[0.0] * 256]}), classifier) == ""

def test_broken_and_duplicate_films_are_reported_and_skipped_and_the_rest_used(model, tmp_path):
    site = make_site_folder(tmp_path / "hospital")
    (site / "normal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (site / "covid19" / "copy.png").write_bytes((site / "covid19" / "covid190.png").read_bytes())
    Image.fromarray(xray_array(200, seed=7)).save(site / "normal" / "large.png")  # another size: fine
    report = validate_site(load_classifier(model), site)
    problems = {p["file"]: p["problem"] for p in report["problems"]}
    assert "broken.png" in problems and "not a recognised image" in problems["broken.png"]
    assert any("duplicate of" in v for v in problems.values())
    assert report["films_used"] == 29


def test_one_class_only_too_few_films_unknown_labels_and_an_empty_folder(model, tmp_path):
    classifier = load_classifier(model)
    one = validate_site(classifier, make_site_folder(tmp_path / "one", classes=("normal",)))
    assert any("no COVID-19 films or only COVID-19 films" in s for s in one["skipped"])
    assert one["after"]["sensitivity"]["value"] is None
    few = validate_site(classifier, make_site_folder(tmp_path / "few", per_class=4))
    assert any(f"at least {MIN_PER_CLASS}" in s for s in few["skipped"]) and not few["adapted"]
    (tmp_path / "odd" / "tuberculosis").mkdir(parents=True)
    Image.fromarray(xray_array(64)).save(tmp_path / "odd" / "tuberculosis" / "a.png")
    (tmp_path / "odd" / "normal").mkdir()
    with pytest.raises(DatasetError, match="tuberculosis have no known class"):
        validate_site(classifier, tmp_path / "odd")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a data set"):
        validate_site(classifier, tmp_path / "empty")
    with pytest.raises(ConfigError, match="target sensitivity"):
        validate_site(classifier, tmp_path / "few", target_sensitivity=1.5)


def _site_of_patients(root: Path, patients: dict[str, int], films: int = 12) -> Path:
    """``films`` films of each class in ``patients`` ({class: patients}), shared out among that many patient folders
    inside the class folder (root/<class>/<patient>/*.png), as a PACS export lays them out."""
    from app_helpers import png_bytes, site_film

    for k, (cls, n) in enumerate(patients.items()):
        for i in range(films):
            folder = root / cls / f"{cls}-patient{i % n}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.png").write_bytes(png_bytes(site_film(cls, i, k)))
    return root


def test_a_site_whose_films_come_from_too_few_patients_is_measured_but_not_adapted(model, tmp_path):
    """Twelve COVID-19 films of two patients cannot be cross-validated by patient (a head fitted without one of
    them is then chosen on films of the other alone): validate-site stopped with scikit-learn's ValueError. It now
    measures the films and says why nothing was adapted; the call's own step likewise."""
    classifier = load_classifier(model)
    site = _site_of_patients(tmp_path / "few", {"normal": 4, "pneumonia": 1, "covid19": 2})
    report = validate_site(classifier, site)
    assert report["patients"] == 7 and report["films_used"] == 36
    assert ("adapting the COVID-19 verdict: the COVID-19 films come from 2 patients and the other films from 5; "
            "cross-validating by patient needs films of more patients of each kind (at least 3 each)"
            in report["skipped"]), report["skipped"]
    assert ("the call between normal and pneumonia: the pneumonia films come from 1 patient and the normal films "
            "from 4; cross-validating by patient needs films of more patients of each kind (at least 2 each)"
            in report["skipped"]), report["skipped"]
    assert not report["adapted"] and not report["parameters"]
    assert report["before"]["sensitivity"]["value"] is not None  # measured all the same
    r = _cli("validate-site", "--model", model, "--data", site, "--out", tmp_path / "site.json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "36 films of 7 patients used" in r.stdout


def test_films_that_all_carry_one_patient_id_count_as_one_patient_each_and_the_report_says_so(model, tmp_path):
    """An anonymised export gives every film the same PatientID (or the same folder inside every class folder):
    counted as one patient, no fold could be held out. Each film then counts as its own patient, and the report
    says so, since films of one patient would narrow the intervals more than they should."""
    from app_helpers import site_film
    from covid_core.site_job import films_used_text
    from synthetic_files import dicom_bytes

    for k, cls in enumerate(("normal", "covid19")):
        (tmp_path / "anon" / cls).mkdir(parents=True)
        for i in range(12):  # dicom_bytes writes PatientID PID-12345 into every film
            (tmp_path / "anon" / cls / f"IM{i:06d}").write_bytes(dicom_bytes(site_film(cls, i, k).astype(np.uint16)))
    report = validate_site(load_classifier(model), tmp_path / "anon")
    assert report["patients"] is None and films_used_text(report) == "24 films"
    assert any(line.startswith("telling patients apart: all 24 films carry the same patient ID") and
               "each file is counted as its own patient" in line for line in report["skipped"])
    assert "patient-grouped" in report["after"]["estimated_by"]  # adapted as usual, each film a patient
    series = _site_of_patients(tmp_path / "series", {"normal": 1, "covid19": 1})  # one folder name in both
    for cls in ("normal", "covid19"):
        (series / cls / f"{cls}-patient0").rename(series / cls / "DICOM")
    assert validate_site(load_classifier(model), series)["patients"] is None


def test_a_site_files_version_follows_its_content(model, tmp_path):
    """Results scored with one version of a site file are told apart from another's (the app's case cache)."""
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    def write(path, threshold):
        path.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere",
                                    "checkpoint": {"sha256": file_sha256(model)},
                                    "parameters": {"threshold": threshold}}))
        return load_site(path, model)

    first, same = write(tmp_path / "a.json", 0.3), write(tmp_path / "b.json", 0.3)
    revalidated = write(tmp_path / "a.json", 0.6)  # the same hospital, validated again
    assert first.version and first.version == same.version
    assert revalidated.version != first.version and revalidated.name == first.name


def test_a_sites_name_is_plain_words_wherever_it_is_shown(model, tmp_path):
    """A site file passed around (``--site``, a copy beside the model) must not put a link, an image fetched from
    elsewhere, LaTeX or HTML into Diagnose's statement: its name is read back as plain words."""
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT, clean_site_name

    path = tmp_path / "site.json"
    path.write_text(json.dumps({"format": SITE_FORMAT, "checkpoint": {"sha256": file_sha256(model)},
                                "site": "![x](http://tracker.example/p.png) <img src=x> $x$ :red[St] " + "y" * 200}))
    name = load_site(path, model).name
    assert not set(name) & set("[]<>$") and len(name) <= 80 and "tracker.example" in name  # words are kept
    assert clean_site_name("St. Mary's (North) \n ward 3") == "St. Mary's (North) ward 3"
    assert clean_site_name("\x00 ") == "site"
    # a bare web or e-mail address would be a link in Markdown: an invisible word joiner keeps it text, and a name
    # read back from its site file stays the same
    inert = clean_site_name("see www.evil.example or me@evil.org")
    assert inert == "see www\u2060.evil.example or me@\u2060evil.org" and clean_site_name(inert) == inert
    films = make_site_folder(tmp_path / "hospital", per_class=MIN_PER_CLASS)
    assert validate_site(load_classifier(model), films, name="**St** [E](x)")["site"] == "St E (x)"


def _temperature_case(covid_margin: float, n: int = 20):
    """Logits of a 3-class model (normal, pneumonia, covid19) at temperature 1 with a threshold of 0.5 on
    p(covid19): n COVID-19 films (0, 0, covid_margin), all called positive; 2n other films (0, 3, -3), confident
    pneumonia calls of which half are normal films, so a higher temperature lowers the log-loss."""
    logits = np.vstack([np.tile([0.0, 0.0, covid_margin], (n, 1)), np.tile([0.0, 3.0, -3.0], (2 * n, 1))])
    labels = np.array([2] * n + [0, 1] * n)
    y = labels == 2
    folds = _folds(np.arange(len(y)).astype(str), y)
    return temperature_step(logits, labels, y, 2, folds, 1.0, 0.5)


def test_a_temperature_that_calibrates_better_but_moves_verdicts_the_wrong_way_is_not_kept():
    # Margin 1: the refit temperature (about 3) takes p(covid19) of every COVID-19 film below 0.5, so the shipped
    # threshold would call them all negative; the lower log-loss alone must not buy that.
    refit, probs, line = _temperature_case(covid_margin=1.0)
    assert refit is None, line
    assert "lowered the held-out log-loss" in line and "worse" in line and "1.000 -> 0.500" in line
    assert np.allclose(probs[:20, 2], np.exp(1) / (2 + np.exp(1)))  # the shipped probabilities, unchanged
    # Margin 12: the same refit keeps every verdict, so it is kept, and the held-out probabilities come with it.
    refit, probs, line = _temperature_case(covid_margin=12.0)
    assert refit is not None and refit > 2 and line.startswith("temperature 1.000 -> ")
    assert (probs[:20, 2] >= 0.5).all() and probs[20:, 2].max() < 0.5
    assert probs[20:, 1].max() < 0.9  # calibrated: the confident pneumonia calls are softened


def test_the_sites_predictive_values_are_stated_with_the_covid_share_they_hold_for():
    from covid_core.site_job import predictive_values_text

    text = predictive_values_text({"after": {"counts": {"tp": 56, "fn": 4, "fp": 20, "tn": 110}}})
    assert text.startswith("On these films, 31.6% of them COVID-19, 73.7% (95% CI 63-82%) of the positive verdicts "
                           "were right (PPV, 56 of 76) and 96.5% (95% CI 91-99%) of the negative verdicts were right "
                           "(NPV, 110 of 114).")  # Wilson intervals of the counts
    # too few films to adapt: the shipped figures' counts; no positive verdict: said, not divided by zero
    few = {"after": {"sensitivity": {"value": 0.0}}, "before": {"counts": {"tp": 0, "fn": 3, "fp": 0, "tn": 10}}}
    assert "no verdict was positive and 76.9% (95% CI 50-92%) of the negative verdicts were right" in \
        predictive_values_text(few)
    assert predictive_values_text({"before": {"counts": {"tp": 0, "fn": 0, "fp": 2, "tn": 9}}}) == ""  # one kind


def test_a_site_with_too_few_films_is_told_how_many_would_pin_its_figures_down():
    from covid_core.metrics import proportion_interval
    from covid_core.site_job import films_needed, sample_size_text

    assert films_needed(0.9) == 141 and films_needed(0.5) == 381  # Wilson's interval at most 10 points wide
    assert films_needed(1.0) == films_needed(0.0) == 35 and films_needed(0.95) == 82  # exact at the ends too
    assert films_needed(0.92) == 116 and proportion_interval(107, 116)[1] - proportion_interval(107, 116)[0] <= 0.1
    text = sample_size_text({"after": {"counts": {"tp": 46, "fn": 4, "fp": 19, "tn": 105}}})
    assert text == ("To know the sensitivity and specificity within +/-5 points (95% interval), label about 116 "
                    "COVID-19 films (sensitivity 92% on 50 here) and about 201 other films (specificity 85% on 124 "
                    "here), each from a different patient, and validate again.")
    enough_others = sample_size_text({"after": {"counts": {"tp": 46, "fn": 4, "fp": 19, "tn": 505}}})
    assert enough_others.startswith("To know the sensitivity within") and "other films" not in enough_others
    assert sample_size_text({"after": {"counts": {"tp": 400, "fn": 40, "fp": 19, "tn": 505}}}) == ""  # enough
    assert sample_size_text({"after": {}}) == ""  # no counts: nothing to say
    assert sample_size_text({"after": {"counts": {"tp": "4", "fn": 1, "fp": 2, "tn": 9}}}) == ""  # a hand edit


def test_the_films_that_would_get_no_verdict_are_the_unfamiliar_and_the_turned_ones():
    """As in Diagnose: a film unlike the training features, or one whose rotated or inverted copy is more familiar
    than the film itself, gets no verdict; the site's figures for the verdicts given count only the others."""
    from covid_core.ood import fit_ood
    from covid_core.site_figures import given_figures
    from covid_core.site_scoring import withheld_films

    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (200, 4))
    stats = fit_ood({"penultimate": train}, np.repeat([0, 1], 100), {"penultimate": rng.normal(0, 1, (100, 4))})
    films = {"penultimate": np.array([[0.5, 0, 0, 0], [30.0, 0, 0, 0], [1.0, 0, 0, 0], [0.2, 0, 0, 0]])}
    copy = {"penultimate": np.array([[5.0, 0, 0, 0], [40.0, 0, 0, 0], [0.0, 0, 0, 0], [3.0, 0, 0, 0]])}
    # film 1 is far from every training film; film 2's copy sits on the training mean, nearer than the film
    assert withheld_films(stats, films, [copy]).tolist() == [False, True, True, False]
    assert withheld_films(stats, films, []).tolist() == [False, True, False, False]  # no orientation check
    assert withheld_films(None, films, [copy]).tolist() == [False] * 4  # no familiarity check at all

    y = np.array([True, True, True, False, False, False])
    positive = np.array([True, True, False, True, False, False])
    withheld = np.array([False, True, True, False, False, False])
    given = given_figures(y, positive.astype(float), positive, np.arange(6).astype(str), withheld)
    assert (given["films"], given["withheld"]) == (6, 2)
    assert given["counts"] == {"tp": 1, "fn": 0, "fp": 1, "tn": 2} and given["sensitivity"]["value"] == 1.0
    assert "roc" not in given
    none_given = given_figures(y, positive.astype(float), positive, np.arange(6).astype(str), np.ones(6, bool))
    assert none_given == {"films": 6, "withheld": 6}
    from covid_core.site_job import given_rates_text, predictive_values_text

    nothing = {"after": {"given": none_given, "counts": {"tp": 1, "fn": 1, "fp": 1, "tn": 3}}}
    assert given_rates_text(nothing).startswith("None of these 6 films gets a verdict")
    assert "cannot be used" in given_rates_text(nothing)
    assert predictive_values_text(nothing) == ""  # no verdict given: none was right or wrong


def test_a_sites_figures_count_only_the_verdicts_given_and_diagnose_says_how_many_films_that_was(tmp_path):
    """A familiarity threshold that withholds some of the site's films (a third of its COVID-19 films or more): the
    report counts them, its "given" figures leave them out, and the verdict's validation statement quotes those
    figures with the counts."""
    from covid_core.ood import ood_scores
    from covid_core.site_scoring import site_films
    from covid_core.site_file import load_classifier_at_site
    from covid_core.site_job import comparison_rows, given_rates_text, predictive_values_text
    from covid_core.verdict import validation_statement

    site = make_site_folder(tmp_path / "hospital")
    probe = load_classifier(make_checkpoint(tmp_path / "probe.pt"))
    films = site_films(probe, site)
    scores = ood_scores(probe.ood, films["features"])
    threshold = float(np.percentile(scores[films["table"]["label"] == "covid19"], 65))
    model = make_checkpoint(tmp_path / "model.pt", ood_threshold=threshold)  # the same weights
    report = validate_site(load_classifier(model), site, name="St Elsewhere")
    expected = int((scores > threshold).sum())
    assert 0 < expected < 28
    for when in ("before", "after"):
        given = report[when]["given"]
        assert (given["films"], given["withheld"]) == (28, expected)
        assert sum(given["counts"].values()) == 28 - expected
        assert sum(report[when]["counts"].values()) == 28  # the main figures still count every film
    assert [row["no verdict"] for row in comparison_rows(report)] == [f"{expected} of 28"] * 2
    assert given_rates_text(report).startswith(f"{expected} of these 28 films get no verdict")
    assert predictive_values_text(report).startswith(f"On the {28 - expected} of these films that get a verdict, ")
    out = tmp_path / "model.site.json"
    out.write_text(json.dumps(report))
    classifier = load_classifier_at_site(model, site=out)
    assert classifier.site.given == (28 - expected, 28)
    assert classifier.site.created == report["created"] and classifier.site.created  # named in a case report
    assert classifier.site.sensitivity == report["after"]["given"]["sensitivity"]
    statement = validation_statement(classifier.site)
    assert f"on the {28 - expected} of its 28 labelled films that got a verdict" in statement
    # what its verdicts were worth there: the PPV and NPV of the verdicts given, as on the Validate page
    c = report["after"]["given"]["counts"]
    assert classifier.site.counts == c
    assert f"(PPV, {c['tp']} of {c['tp'] + c['fp']})" in statement and f"(NPV, {c['tn']} of {c['tn'] + c['fn']})" \
        in statement


def test_a_folder_of_noise_labelled_as_films_does_not_teach_the_familiarity_check_that_noise_is_familiar(tmp_path):
    """Adding a site's class means to the familiarity reference would make any image like the site's familiar. With
    a folder of noise (a wrong folder, or a hostile one) the held-out films look less unfamiliar once the noise's
    own means join, but the card's probes would then pass: the step is refused with the reason, and the report says
    that no film gets a verdict."""
    from covid_core.site_job import given_rates_text, predictive_values_text

    rng = np.random.default_rng(0)
    for cls in ("normal", "covid19"):
        (tmp_path / "noise" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray((255 * rng.random((200, 200))).astype(np.uint8)).save(tmp_path / "noise" / cls / f"{i}.png")
    report = validate_site(load_classifier(REPO / "weights" / "resnet18.pt"), tmp_path / "noise")
    assert report["before"]["given"]["withheld"] == 24
    assert "ood_means" not in report["parameters"]
    [line] = [s for s in report["skipped"] if s.startswith("familiarity reference")]
    assert "would let through" in line and "check that the folder holds frontal chest X-rays" in line, line
    assert given_rates_text(report).startswith("None of these 24 films gets a verdict")
    assert predictive_values_text(report) == ""


def test_a_model_that_does_poorly_on_the_sites_films_is_named_so_before_it_is_made_active():
    from covid_core.site_job import poor_site_warning

    def report(auc, sens, spec, given=None):
        after = {"auc": {"value": auc}, "sensitivity": {"value": sens}, "specificity": {"value": spec}}
        if given:
            after["given"] = {"films": 20, "withheld": 2, "counts": {"tp": 1, "fn": 1, "fp": 1, "tn": 15},
                              "sensitivity": {"value": given[0]}, "specificity": {"value": given[1]}}
        return {"after": after}

    assert poor_site_warning(report(0.93, 0.9, 0.85)) == ""
    low_auc = poor_site_warning(report(0.62, 0.9, 0.85))
    assert "AUC of 0.62" in low_auc and "often wrong" in low_auc and "sensitivity" not in low_auc
    assert "sensitivity 50% and specificity 80%" in poor_site_warning(report(0.93, 0.5, 0.8))
    # a perfect specificity does not hide a low sensitivity (nor the other way round), though they average 0.72
    assert "sensitivity 44% and specificity 100%" in poor_site_warning(report(0.93, 0.44, 1.0))
    assert "sensitivity 100% and specificity 44%" in poor_site_warning(report(0.93, 1.0, 0.44))
    assert poor_site_warning(report(0.93, 0.62, 0.95)) == ""
    # the verdicts actually given decide where the report has them
    assert "sensitivity 50% and specificity 70%" in poor_site_warning(report(0.93, 0.9, 0.85, given=(0.5, 0.7)))
    assert poor_site_warning({"after": {}}) == ""
    # far below chance before adaptation (a head can learn swapped labels and look good afterwards): said so
    swapped = {**report(0.95, 0.9, 0.9), "before": {"auc": {"value": 0.08}}}
    assert poor_site_warning(swapped).startswith("The shipped model's AUC on your films, 0.08, is far below chance")
    assert "labels are not swapped" in poor_site_warning(swapped)


def test_figures_from_too_few_films_to_confirm_the_model_are_named_so_before_it_is_made_active():
    """On 10 COVID-19 films of an unseen hospital, 7 of the 8 given a verdict caught (0.875, interval from 0.53),
    the model caught 0.600 of other patients' COVID-19 films (bench/site_size.py): a point figure above POOR_RATE
    whose interval reaches below it is not a confirmation."""
    from covid_core.site_file import Site, unsettled_figures
    from covid_core.site_job import poor_site_warning
    from covid_core.verdict import site_doubt_sentence, validation_statement

    few = {"value": 0.875, "low": 0.53, "high": 0.978}
    enough = {"value": 0.9, "low": 0.8, "high": 0.96}
    assert unsettled_figures(few, enough) == ["its sensitivity of 88% could be as low as 53% (95% interval)"]
    assert unsettled_figures(enough, few) == ["its specificity of 88% could be as low as 53% (95% interval)"]
    assert unsettled_figures(enough, enough) == []
    assert unsettled_figures({"value": 0.9, "low": 0.596}, enough) == [  # below 60%, so not rounded up to it
        "its sensitivity of 90% could be as low as 59% (95% interval)"]
    assert unsettled_figures({"value": 0.875}, None) == []  # no interval: nothing to say
    assert unsettled_figures({"value": 0.5, "low": 0.3}, enough) == []  # poor, which poor_figures says

    report = {"after": {"auc": {"value": 0.93}, "sensitivity": few, "specificity": enough}}
    warning = poor_site_warning(report)
    assert warning.startswith("Your films are too few to confirm this model here: its sensitivity of 88% could be "
                              "as low as 53% (95% interval).") and "unconfirmed" in warning
    assert poor_site_warning({"after": {**report["after"], "sensitivity": enough}}) == ""
    # poor figures are named as poor, not as too few
    poor = {"after": {"auc": {"value": 0.93}, "sensitivity": {"value": 0.5, "low": 0.3, "high": 0.7},
                      "specificity": few}}
    assert poor_site_warning(poor).startswith("On your films, even after adaptation")

    site = Site(name="St Elsewhere", sensitivity=few, specificity=enough)
    assert site.unsettled and not site.poor and not site.confirmed
    assert "Too few films to confirm it: its sensitivity of 88% could be as low as 53%" in validation_statement(site)
    assert site_doubt_sentence(site, "St Elsewhere's").startswith("St Elsewhere's labelled films are too few")
    assert Site(name="s", sensitivity=enough, specificity=enough).confirmed
    poor_site = Site(name="s", sensitivity={"value": 0.5, "low": 0.3, "high": 0.7}, specificity=few)
    assert poor_site.poor and not poor_site.unsettled and not poor_site.confirmed


def test_a_perfect_rate_on_a_few_patients_gets_an_interval_that_admits_a_miss():
    """15 of 15 COVID-19 films from 9 patients: a bootstrap alone says 100-100%; the interval is widened to the
    Wilson interval counted on patients (9 of 9: 70-100%)."""
    from covid_core.site_figures import figures

    y = np.array([True] * 15 + [False] * 20)
    positive = y.copy()
    positive[15] = True  # one false positive among 20 other films
    patients = np.array([f"c{i % 9}" for i in range(15)] + [f"n{i}" for i in range(20)])
    score = positive.astype(float)
    f = figures(y, score, positive, patients)
    assert f["sensitivity"]["value"] == 1.0
    assert 0.69 < f["sensitivity"]["low"] < 0.71 and f["sensitivity"]["high"] == 1.0
    assert f["specificity"]["value"] == 0.95
    assert f["specificity"]["low"] < 0.765 and f["specificity"]["high"] > 0.95  # at least Wilson's 19 of 20: 76-99%


def test_a_perfect_auc_on_a_few_patients_gets_an_interval_that_admits_a_misranking():
    """Every COVID-19 film (9 patients) outscores every other film (20 patients): the bootstrap says 1.000-1.000;
    the interval is widened to Wilson's 9 of 9 (70-100%), the smaller side's patients as independent pairs."""
    from covid_core.site_figures import figures

    y = np.array([True] * 15 + [False] * 20)
    patients = np.array([f"c{i % 9}" for i in range(15)] + [f"n{i}" for i in range(20)])
    score = np.where(y, 0.9, 0.1) + np.linspace(0, 0.05, 35)
    f = figures(y, score, y.copy(), patients)
    assert f["auc"]["value"] == 1.0
    assert 0.69 < f["auc"]["low"] < 0.71 and f["auc"]["high"] == 1.0
    overlap = y + np.random.default_rng(0).normal(0, 0.7, 35)  # an imperfect AUC keeps an interval around it
    mixed = figures(y, overlap, y.copy(), patients)
    assert 0.6 < mixed["auc"]["value"] < 1 and mixed["auc"]["low"] < mixed["auc"]["value"] < mixed["auc"]["high"]


def test_a_sites_films_scored_a_few_at_a_time_get_the_scores_they_get_all_at_once(tmp_path, monkeypatch):
    """validate-site scores a folder SCORE_CHUNK films at a time, so that only features stay in memory; the logits,
    features and turned copies' features come out in the table's order, as scoring every film at once gives them,
    and only the first PROBE_FILMS films' pixels are kept (for the familiarity probes)."""
    from covid_core import site_scoring as site_module

    site = make_site_folder(tmp_path / "hospital", per_class=7)
    classifier = load_classifier(make_checkpoint(tmp_path / "m.pt"))
    classifier.ood["orientation_check"] = True  # turned copies are scored too
    monkeypatch.setattr(site_module, "SCORE_CHUNK", 10_000)
    at_once = site_module.site_films(classifier, site)
    monkeypatch.setattr(site_module, "SCORE_CHUNK", 3)
    chunked = site_module.site_films(classifier, site)
    assert chunked["table"]["filename"].tolist() == at_once["table"]["filename"].tolist()
    assert len(chunked["logits"]) == 14 and len(chunked["copies"]) == 4
    np.testing.assert_allclose(chunked["logits"], at_once["logits"], rtol=1e-5, atol=1e-6)
    for got, want in zip([chunked["features"], *chunked["copies"]], [at_once["features"], *at_once["copies"]]):
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    assert chunked["first_pixels"].shape[0] == site_module.PROBE_FILMS
    np.testing.assert_array_equal(chunked["first_pixels"], at_once["first_pixels"])


def _features(n: int, covid: int, seed: int, dims: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate-like features: noise, COVID-19 films shifted along 24 of the dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) < covid
    features = rng.normal(size=(n, dims))
    features[y, :24] += 0.5
    return features, y


def test_a_heads_threshold_keeps_its_sensitivity_on_films_of_other_patients():
    """With many features and few COVID-19 films, a head separates the films it was fitted on perfectly; a
    threshold chosen on those scores for sensitivity 0.90 caught about 1% of new COVID-19 films here. Chosen on
    held-out scores, it catches about 90% of them."""
    features, y = _features(300, 20, seed=0)
    head, threshold = head_operating_point(features, y, np.array([f"p{i}" for i in range(300)]), 0.90)
    new, new_y = _features(4000, 1000, seed=1)
    sensitivity = (_head_scores(head, new[new_y]) >= threshold).mean()
    assert 0.80 <= sensitivity <= 0.99, sensitivity


def test_a_site_file_whose_heads_threshold_was_chosen_on_its_fitted_films_is_refused(model, tmp_path):
    """Such a threshold caught a third of other patients' COVID-19 films at an unseen hospital: the file is refused
    with the reason, and Diagnose gives no verdict, as before any validation, until the site validates again."""
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    head = {"mean": [0.0] * 256, "scale": [1.0] * 256, "coef": [0.1] * 256, "intercept": 0.0}
    site = tmp_path / "site.json"
    for marker, refused in (({}, True), ({"head_threshold_from": "held-out scores"}, False)):
        site.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {
            "sha256": file_sha256(model)}, "parameters": {"head": head, "threshold": 0.9, **marker}}))
        if refused:
            with pytest.raises(ConfigError, match="threshold was chosen on the films the head was fitted on"):
                load_site(site, model)
        else:
            assert load_site(site, model).head == head


def test_a_site_validated_without_covid_films_does_not_confirm_the_covid_verdict(model, tmp_path):
    """Its COVID-19 sensitivity could not be measured: the verdicts there must read as unconfirmed, and the Validate
    page must warn before the file is made active, instead of 'validated' with a sensitivity of n/a."""
    from covid_core.decode import decode_image
    from covid_core.inference import predict
    from covid_core.site_file import load_classifier_at_site
    from covid_core.site_job import poor_site_warning
    from covid_core.verdict import site_doubt_sentence, validation_statement, verdict_caveat

    from app_helpers import png_bytes

    site = make_site_folder(tmp_path / "hospital", per_class=12, classes=("normal", "pneumonia"))
    report = validate_site(load_classifier(model), site, name="St Elsewhere")
    assert report["after"]["sensitivity"]["value"] is None and report["after"]["specificity"]["value"] is not None
    path = tmp_path / "site.json"
    path.write_text(json.dumps(report))
    unknown = "its sensitivity is unknown (no COVID-19 film of its own got a verdict)"
    assert unknown in poor_site_warning(report)
    classifier = load_classifier_at_site(model, path)
    assert not classifier.site.confirmed and classifier.site.unsettled == unknown
    p = predict(classifier, decode_image(png_bytes(xray_array(64)), "film.png"))
    assert p.covid_call in ("positive", "negative")
    assert verdict_caveat(p, classifier.site).startswith("Unconfirmed: St Elsewhere's labelled films are too few")
    assert f"Too few films to confirm it: {unknown}." in validation_statement(classifier.site, p, classifier.metadata)
    assert unknown in site_doubt_sentence(classifier.site, "the site's")
