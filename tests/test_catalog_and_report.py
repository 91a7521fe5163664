"""Core modules behind the app: the model catalog and the one-case HTML report."""

from __future__ import annotations

import pytest
import torch

from app_helpers import make_checkpoint, xray_array
from covid_core.checkpoint import load_classifier
from covid_core.decode import decode_image
from covid_core.inference import predict
from covid_core.model_catalog import list_checkpoints, source_confounds, usable_classifiers
from covid_core.report import DISCLAIMER, case_report_html, prediction_row
from covid_core.verdict import operating_threshold


class Evil:
    def __reduce__(self):
        return (print, ("this would run",))


def test_catalog_lists_usable_and_unusable_with_reasons(tmp_path):
    w = tmp_path / "weights"
    w.mkdir()
    make_checkpoint(w / "good.pt")
    (w / "corrupt.pt").write_bytes(b"\x00garbage")
    torch.save({"state_dict": {}, "format": "someone-else/1"}, w / "foreign.pt")
    torch.save({"state_dict": {}, "payload": Evil()}, w / "pickled.pt")
    (w / "notes.txt").write_text("not a checkpoint")
    entries = {e.label: e for e in list_checkpoints(w, tmp_path / "runs")}
    assert set(entries) == {"good.pt", "corrupt.pt", "foreign.pt", "pickled.pt"}
    assert entries["good.pt"].usable and len(entries["good.pt"].fingerprint) == 12
    assert "corrupt" in entries["corrupt.pt"].reason
    assert "not a covid_core classifier" in entries["foreign.pt"].reason
    assert "refused" in entries["pickled.pt"].reason
    assert [e.label for e in usable_classifiers(w, tmp_path / "runs")] == ["good.pt"]


def test_the_default_model_is_listed_first(tmp_path):
    w = tmp_path / "weights"
    w.mkdir()
    for name in ("cnn.pt", "resnet18.pt", "aaa.pt"):
        make_checkpoint(w / name)
    assert [e.label for e in usable_classifiers(w, tmp_path / "runs")] == ["resnet18.pt", "aaa.pt", "cnn.pt"]


def test_confound_warning_names_single_class_sources():
    warnings = source_confounds({"a": {"true": {"covid19": 9, "normal": 0}}, "b": {"true": {"covid19": 5, "normal": 5}}})
    assert len(warnings) == 1 and "source 'a'" in warnings[0] and "covid19" in warnings[0]


def _unvalidated(path):
    """A classifier giving verdicts without a site file (research use), as --unvalidated loads it."""
    clf = load_classifier(path)
    clf.verdicts_unvalidated = True
    return clf


def test_report_is_self_contained_and_hides_patient_fields_by_default(tmp_path):
    clf = _unvalidated(make_checkpoint(tmp_path / "m.pt"))
    img = decode_image(_png(xray_array(64)), "x.png")
    pred = predict(clf, img)
    patient = {"PatientName": "Doe^Jane", "PatientID": "PID-7781-ZX"}
    html = case_report_html(name="x.png", image=img.pixels, prediction=pred, classifier=clf, model_label="m.pt",
                            model_fingerprint="abc123", patient_info=patient)
    assert DISCLAIMER in html and "data:image/png;base64," in html
    assert ("COVID-19: positive" in html) != ("COVID-19: negative" in html)
    assert "90.0%" in html and "75.0%" in html  # TEST sensitivity/specificity at the threshold
    assert "Doe^Jane" not in html and "PID-7781-ZX" not in html
    # an old-format OOD entry (raw distance, threshold 1e12) still scores, and the report names the threshold
    assert f"{pred.ood_score:.2f} ({1e12:.2f} or more means unlike the training X-rays; this image: like them)" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere
    shown = case_report_html(name="x.png", image=img.pixels, prediction=pred, classifier=clf, model_label="m.pt",
                             patient_info=patient, include_patient_info=True)
    assert "Doe^Jane" in shown
    row = prediction_row("x.png", pred)
    assert pred.unconfirmed and row["verdict"].endswith("(unconfirmed)")  # verdicts before site validation
    assert row["verdict"].startswith("COVID-19") and abs(sum(v for k, v in row.items() if k.startswith("p(")) - 1) < 1e-5


def test_report_of_a_positive_verdict_gives_ppv_and_its_limits(tmp_path):
    img = decode_image(_png(xray_array(64)), "x.png")
    positive = _unvalidated(make_checkpoint(tmp_path / "pos.pt", covid_threshold=0.0))
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(positive, img), classifier=positive,
                            model_label="pos.pt")
    # a verdict no site file confirms says so inside the verdict, as the Diagnose card does, not only further down
    assert "COVID-19: positive" in html and '<div class="verdict pos unsettled">' in html
    assert '<div class="caveat">Unconfirmed: this model has not been validated at your hospital.</div>' in html
    assert "<th>TEST PPV at this threshold (this verdict&#x27;s)</th><td>64.3% (9 of 14)</td>" in html
    assert "<th>TEST NPV at this threshold</th><td>93.8% (15 of 16)</td>" in html and "<th>Terms</th>" in html
    assert '<p class="limit">On TEST, 64.3% of the films this model called COVID-19 positive' in html
    negative = _unvalidated(make_checkpoint(tmp_path / "neg.pt", covid_threshold=1.0))
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(negative, img), classifier=negative,
                            model_label="neg.pt")
    assert "COVID-19: negative" in html and "PPV)" not in html  # no positive verdict's limits
    call = predict(negative, img).call  # green only where no pneumonia is seen: a pneumonia is not good news
    assert f'<div class="verdict {"abn" if call == "pneumonia" else "neg"} unsettled">' in html
    assert '<p class="limit">On TEST, 93.8% of the films called COVID-19 negative had no COVID-19 (NPV)' in html
    assert "Not validated at your hospital" in html
    assert "<th>Site validation</th><td>none: not validated at this hospital</td>" in html
    # what it was trained on (the fixture's record), where its TEST figures were measured
    assert "<th>Trained on</th><td>fixture-films (folders layout; cohen 10, kermany 20; 1 unreadable left out)</td>" \
        in html


def test_at_a_validated_site_a_verdict_is_worth_what_it_was_worth_on_the_sites_films(tmp_path):
    """A site that kept the shipped threshold: the verdict's worth at that hospital leads, not the TEST PPV/NPV."""
    from covid_core.site_file import Site

    img = decode_image(_png(xray_array(64)), "x.png")
    counts = {"tp": 46, "fp": 19, "fn": 4, "tn": 105}
    positive = load_classifier(make_checkpoint(tmp_path / "pos.pt", covid_threshold=0.0))
    positive.site = Site(name="St Elsewhere", counts=counts, given=(174, 190))
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(positive, img), classifier=positive,
                            model_label="pos.pt")
    assert ('<p class="limit">At St Elsewhere, 70.8% (95% CI 59-80%) of the positive verdicts on its own labelled '
            "films were right (PPV, 46 of 65), where 28.7% of those films had COVID-19") in html
    assert "On TEST, 64.3% of the films this model called COVID-19 positive" not in html
    assert html.count("(PPV, 46 of 65)") == 1  # the validation statement below does not say it again
    assert "<th>Site validation</th><td>St Elsewhere</td>" in html  # which validation was in force
    assert "TEST PPV at this threshold" in html  # the shipped threshold's TEST rates stay among the numbers
    assert '<div class="verdict pos">' in html and 'class="caveat"' not in html  # confirmed there: settled
    positive.site = Site(name="St Elsewhere", sensitivity={"value": 0.5}, specificity={"value": 0.5})
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(positive, img), classifier=positive,
                            model_label="pos.pt")
    assert ('<div class="caveat">Often wrong here: this model did poorly on St Elsewhere&#x27;s own labelled films.'
            "</div>") in html
    negative = load_classifier(make_checkpoint(tmp_path / "neg.pt", covid_threshold=1.0))
    calls = {"normal": {"normal": 40, "pneumonia": 10}, "pneumonia": {"normal": 8, "pneumonia": 42}}  # confirmed
    negative.site = Site(name="St Elsewhere", counts=counts, given=(174, 190), calls=calls)
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(negative, img), classifier=negative,
                            model_label="neg.pt")
    assert ("At St Elsewhere, 96.3% (95% CI 91-99%) of the negative verdicts on its own labelled films were right "
            "(NPV, 105 of 109)") in html and "A negative COVID-19 verdict is not a normal film" in html
    assert "of its own labelled films called &quot;" in html  # how often the first line was right there
    assert "On TEST, 93.8% of the films called COVID-19 negative" not in html
    # a site that moved the threshold says so after its figures; one without counts keeps the older sentences
    negative.site = Site(name="St Elsewhere", threshold=2.0, counts=counts)
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(negative, img), classifier=negative,
                            model_label="neg.pt")
    assert "(NPV, 105 of 109)" in html and "not the shipped threshold, so the public TEST figures" in html
    negative.site = Site(name="St <Elsewhere>", created="2026-12-05T10:00:00+0000", version="0123abcd")
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(negative, img), classifier=negative,
                            model_label="neg.pt")
    assert ("<th>Site validation</th><td>St &lt;Elsewhere&gt;, made 2026-12-05T10:00:00+0000, site file version "
            "0123abcd</td>") in html
    negative.site = Site(name="St Elsewhere")
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(negative, img), classifier=negative,
                            model_label="neg.pt")
    assert "On TEST, 93.8% of the films called COVID-19 negative" in html and "At St Elsewhere, " not in html


def test_without_a_site_file_a_covid_model_gives_no_verdict_and_says_how_to_get_one(tmp_path):
    img = decode_image(_png(xray_array(64)), "x.png")
    clf = load_classifier(make_checkpoint(tmp_path / "pos.pt", covid_threshold=0.0))  # raw output: positive
    pred = predict(clf, img)
    assert pred.covid_positive and not pred.ood_flagged and pred.not_validated
    assert pred.covid_call == "withheld" and pred.verdict == "No verdict: the model is not validated at this hospital"
    html = case_report_html(name="x.png", image=img.pixels, prediction=pred, classifier=clf, model_label="pos.pt")
    assert "No verdict: this model is not validated at your hospital" in html and "COVID-19: positive" not in html
    assert "44-91%" in html and "Validate page" in html  # why, and how to get verdicts
    assert "(PPV)" not in html and "TEST PPV at this threshold" not in html and "Raw model output (not a finding" in html
    row = prediction_row("x.png", pred)
    assert row["verdict"].startswith("No verdict") and row["COVID-19 probability"] is None
    # a site file validates it: the verdict is given (the site's own threshold would apply)
    from covid_core.site_file import Site

    clf.site = Site(name="St Elsewhere")
    assert predict(clf, img).covid_call == "positive"
    assert predict(clf, img).verdict == "COVID-19: positive" and not predict(clf, img).unconfirmed
    # with the site's own threshold, the report quotes no TEST rate of the shipped threshold as this verdict's
    clf.site = Site(name="St Elsewhere", threshold=0.0)
    html = case_report_html(name="x.png", image=img.pixels, prediction=predict(clf, img), classifier=clf,
                            model_label="pos.pt")
    assert "COVID-19: positive" in html and "operating point validated at St Elsewhere" in html
    assert "TEST PPV at this threshold" not in html and "(PPV)" not in html and "false positives on TEST" not in html
    assert operating_threshold(clf)["test"] == {} and "COVID-19 probability" in operating_threshold(clf)["rule"]
    clf.site = Site(name="St Elsewhere", threshold=0.5, head={"mean": [0.0], "scale": [1.0], "coef": [0.0],
                                                               "intercept": 0.0})
    assert "a head fitted on the network's features" in operating_threshold(clf)["rule"]
    # the head's score decides the verdict: the report names it as the site's, apart from the network's own
    [linear] = [m for m in clf.model.modules() if isinstance(m, torch.nn.Linear)]
    clf.site.head = {"mean": 0.0, "scale": 1.0, "coef": [0.0] * linear.in_features, "intercept": 3.0}
    pred = predict(clf, img)
    assert abs(pred.covid_probability - 0.9526) < 1e-3 and abs(pred.probabilities["covid19"] - 0.9526) > 1e-3
    html = case_report_html(name="x.png", image=img.pixels, prediction=pred, classifier=clf, model_label="pos.pt")
    assert "<th>COVID-19 probability at this site (the verdict&#x27;s; the network&#x27;s own is above)</th>" in html
    # a model without a COVID-19 class cannot be validated by validate-site and keeps its call
    pneumonia = load_classifier(make_checkpoint(tmp_path / "pn.pt"))
    pneumonia.target = "pneumonia"  # the normal/pneumonia task: no COVID-19 class, so no COVID-19 verdict to withhold
    assert predict(pneumonia, img).covid_positive is None and not predict(pneumonia, img).withheld


def test_out_of_distribution_film_is_reported_without_a_verdict(tmp_path):
    img = decode_image(_png(xray_array(64)), "x.png")
    clf = load_classifier(make_checkpoint(tmp_path / "ood.pt", covid_threshold=0.0, ood_threshold=-1.0))
    pred = predict(clf, img)
    assert pred.covid_positive and pred.ood_flagged  # the raw output would have said positive
    assert pred.covid_call == "withheld" and pred.verdict.startswith("No verdict")
    html = case_report_html(name="x.png", image=img.pixels, prediction=pred, classifier=clf, model_label="ood.pt")
    assert "No verdict: this film is unlike the X-rays the model learned from" in html
    assert "COVID-19: positive" not in html and "has not seen films like this one" in html
    assert "(PPV)" not in html and "(NPV)" not in html and "this image: unlike them, no verdict given" in html
    assert "Raw model output (not a finding" in html
    assert "TEST PPV at this threshold" not in html  # no verdict, so no verdict's reliability
    assert prediction_row("x.png", pred)["verdict"].startswith("No verdict")


def _png(arr):
    from app_helpers import png_bytes

    return png_bytes(arr)


def test_making_a_site_file_active_keeps_the_one_it_replaces(tmp_path, monkeypatch):
    import os

    from covid_core.model_catalog import activate_site_file, site_file_for

    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    assert activate_site_file(model, '{"site": "first"}') == (tmp_path / "m.site.json", None)
    path, retired = activate_site_file(model, '{"site": "second"}')
    assert site_file_for(model) == path and path.read_text() == '{"site": "second"}'
    assert retired.name.startswith("m.site-retired-") and retired.read_text() == '{"site": "first"}'
    assert activate_site_file(model, '{"site": "second"}') == (path, None)  # a second click: no copy retired
    assert len(list(tmp_path.glob("m.site-retired-*.json"))) == 1
    # a write that fails leaves the active file as it was, and no temporary file behind
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        activate_site_file(model, '{"site": "third"}')
    assert path.read_text() == '{"site": "second"}' and len(list(tmp_path.iterdir())) == 3


def test_earlier_site_files_are_listed_newest_first_and_a_damaged_one_says_so(tmp_path):
    import json

    from covid_core.model_catalog import activate_site_file, retired_site_files
    from covid_core.site_job import site_history_rows

    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    figures = {"sensitivity": {"value": 0.9}, "specificity": {"value": "high"}}  # a hand edit broke one figure
    activate_site_file(model, json.dumps({"site": "![x](http://e.example) first", "after": figures}))
    activate_site_file(model, json.dumps({"site": "second", "counts": {"normal": 12, "covid19": 12}}))
    activate_site_file(model, "{}")
    newer, older = retired_site_files(model)  # the most recently written first, even within one second
    assert json.loads(newer.read_text())["site"] == "second" and "first" in older.read_text()
    rows = {r["file"]: r for r in site_history_rows(retired_site_files(model))}
    # listed, not a traceback: the figure that is one shown, the other "n/a", the name as plain words
    assert (rows[older.name]["COVID-19 sensitivity"], rows[older.name]["specificity"]) == ("90.0%", "n/a")
    assert "](" not in rows[older.name]["site"] and rows[older.name]["site"].endswith("first")
    assert rows[newer.name]["site"] == "second" and rows[newer.name]["films"] == "12 normal and 12 COVID-19 films"
