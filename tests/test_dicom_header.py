"""A DICOM header that names another kind of film (a lateral view, a knee, a CT slice, a raw detector image) gets
no verdict, said why."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from app_helpers import make_checkpoint, xray_array
from covid_core.dicom_header import not_a_frontal_chest_film, raw_detector_image, why_no_verdict
from synthetic_files import dicom_bytes


@pytest.mark.parametrize("info, found", [
    ({"ViewPosition": "LL"}, "its view is LL, not a frontal (PA or AP) view"),
    ({"ViewPosition": "LATERAL"}, "its view is LATERAL, not a frontal (PA or AP) view"),
    ({"ViewPosition": "RLD"}, "its view is RLD, not a frontal (PA or AP) view"),
    ({"BodyPartExamined": "KNEE"}, "the body part examined is KNEE"),
    ({"BodyPartExamined": "L-SPINE"}, "the body part examined is L-SPINE"),
    ({"Modality": "CT", "BodyPartExamined": "CHEST"}, "its modality is CT, not a radiograph"),
    # the file's maker wrote the header: what would be Markdown or HTML in the page is left out of the sentence
    ({"ViewPosition": "LL ![seen](http://evil.example/p.png) <b>"},
     "its view is LL seen http //evil.example/p.png b, not a frontal (PA or AP) view"),
    ({"ViewPosition": "LL www.evil.example"}, "its view is LL www\u2060.evil.example, not a frontal (PA or AP) view"),
])
def test_a_header_that_names_another_kind_of_film_is_said_in_words(info, found):
    assert not_a_frontal_chest_film(info) == (f"The DICOM header says this is not a frontal chest X-ray ({found}). "
                                              "The model reads frontal chest X-rays only, so no verdict is given.")


@pytest.mark.parametrize("info", [
    {}, {"ViewPosition": "PA"}, {"ViewPosition": "AP"}, {"ViewPosition": "PORTABLE AP"}, {"ViewPosition": ""},
    {"BodyPartExamined": "CHEST"}, {"BodyPartExamined": "TORAX"}, {"BodyPartExamined": "CHEST ABDOMEN"},
    {"BodyPartExamined": "PORT CHEST"}, {"Modality": "DX"}, {"Modality": "CR"}, {"Modality": "SC"},
    {"Modality": "OT"}, {"BodyPartExamined": "XYZZY"},
])
def test_a_frontal_chest_film_or_a_header_that_says_nothing_clear_keeps_its_verdict(info):
    assert not_a_frontal_chest_film(info) == ""


@pytest.mark.parametrize("info", [
    {"PresentationIntentType": "FOR PROCESSING"}, {"PresentationIntentType": " for processing "},
    {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.1.1"},  # Digital X-Ray Image Storage - For Processing
])
def test_a_raw_detector_image_is_said_in_words(info):
    sentence = raw_detector_image(info)
    assert sentence.startswith("The DICOM header says this is a raw detector image (FOR PROCESSING)")
    assert sentence.endswith("send the FOR PRESENTATION image of the same exposure.")
    assert why_no_verdict(info) == ("raw", sentence)


@pytest.mark.parametrize("info", [
    {}, {"PresentationIntentType": "FOR PRESENTATION"}, {"PresentationIntentType": ""},
    {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.1"},  # Digital X-Ray Image Storage - For Presentation
    {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1"},  # Computed Radiography Image Storage
])
def test_a_presentation_image_or_a_header_that_says_nothing_is_not_raw(info):
    assert raw_detector_image(info) == "" and why_no_verdict(info) == ("", "")


def test_a_header_that_names_another_view_is_said_first():
    kind, sentence = why_no_verdict({"ViewPosition": "LL", "PresentationIntentType": "FOR PROCESSING"})
    assert kind == "not_frontal" and "its view is LL" in sentence


def _film(header: dict) -> bytes:
    return dicom_bytes((xray_array(64).astype(np.uint16) * 16), header=header)


def test_a_lateral_dicom_gets_no_verdict_in_the_case_path_and_the_command_line(tmp_path, capsys):
    from covid_core.case import open_case
    from covid_core.checkpoint import load_classifier
    from covid_core.cli import main
    from covid_core.verdict import headline, withheld_reason

    model = make_checkpoint(tmp_path / "m.pt", covid_threshold=0.0)  # every film positive at the threshold
    clf = load_classifier(model)
    clf.verdicts_unvalidated = True  # research use: verdicts before site validation, as --unvalidated loads it
    frontal = open_case(_film({"ViewPosition": "PA"}), "pa.dcm", clf).prediction
    assert frontal.covid_call == "positive" and frontal.withheld_why == ""
    lateral = open_case(_film({"ViewPosition": "LL"}), "lat.dcm", clf).prediction
    assert lateral.withheld and lateral.covid_call == "withheld" and not lateral.unconfirmed
    assert "its view is LL" in lateral.withheld_why and lateral.warnings[0] == lateral.withheld_why
    assert lateral.withheld_kind == "not_frontal"
    assert headline(lateral).covid_line == "" and withheld_reason(lateral).startswith(lateral.withheld_why)
    assert headline(lateral).title == "No verdict: the DICOM header says this is not a frontal chest X-ray"
    assert lateral.verdict == "No verdict: not a frontal chest X-ray (DICOM header)"  # the results table's words
    folder = tmp_path / "films"
    folder.mkdir()
    (folder / "pa.dcm").write_bytes(_film({"ViewPosition": "PA"}))
    (folder / "knee.dcm").write_bytes(_film({"BodyPartExamined": "KNEE"}))
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(model), str(folder), "--out", str(out), "--unvalidated"]) == 0
    rows = {r["filename"]: r for r in csv.DictReader(out.open())}
    assert rows["pa.dcm"]["covid_verdict"] == "positive"
    assert rows["knee.dcm"]["covid_verdict"] == "withheld" and rows["knee.dcm"]["ood_flagged"] == "true"
    assert "knee.dcm: no verdict: The DICOM header says" in capsys.readouterr().err


def test_a_raw_detector_dicom_gets_no_verdict_and_says_which_image_to_send(tmp_path):
    from covid_core.case import open_case
    from covid_core.checkpoint import load_classifier
    from covid_core.verdict import headline, withheld_reason

    clf = load_classifier(make_checkpoint(tmp_path / "m.pt", covid_threshold=0.0))  # every film positive
    clf.verdicts_unvalidated = True
    presentation = open_case(_film({"PresentationIntentType": "FOR PRESENTATION"}), "p.dcm", clf)
    assert presentation.prediction.covid_call == "positive" and presentation.prediction.withheld_kind == ""
    raw = open_case(_film({"PresentationIntentType": "FOR PROCESSING"}), "raw.dcm", clf)
    p = raw.prediction
    assert p.withheld and p.covid_call == "withheld" and p.withheld_kind == "raw" and not p.unconfirmed
    assert p.verdict == "No verdict: raw detector image, not the processed film (DICOM header)"
    assert headline(p).title == ("No verdict: the DICOM header says this is a raw detector image, not the "
                                 "processed film")
    assert withheld_reason(p).startswith("The DICOM header says this is a raw detector image (FOR PROCESSING)")
    assert raw.image.dicom_info["PresentationIntentType"] == "FOR PROCESSING"  # shown in the DICOM table


def test_a_site_folders_lateral_dicom_is_left_out_of_its_validation_with_the_reason(tmp_path):
    """Diagnose gives such a film no verdict, so site validation does not count it for or against the model."""
    from PIL import Image

    from covid_core.checkpoint import load_classifier
    from covid_core.site_scoring import site_films

    for cls in ("normal", "covid19"):
        (tmp_path / "site" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(xray_array(64, seed=10 * i + len(cls))).save(tmp_path / "site" / cls / f"{cls}{i}.png")
    (tmp_path / "site" / "covid19" / "lateral.dcm").write_bytes(_film({"ViewPosition": "LL"}))
    films = site_films(load_classifier(make_checkpoint(tmp_path / "m.pt")), tmp_path / "site")
    assert len(films["table"]) == 6 and "lateral.dcm" not in set(films["table"]["filename"])
    [problem] = films["problems"]
    assert problem["file"] == "lateral.dcm" and "its view is LL" in problem["problem"]


def test_diagnose_says_why_a_lateral_dicom_gets_no_verdict(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app_helpers import APP, app_env

    app_env(tmp_path, monkeypatch)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.file_uploader(key="diag_upload").set_value(("lat.dcm", _film({"ViewPosition": "LL"}), "application/dicom"))
    at.run()
    assert not at.exception, at.exception
    assert any("No verdict: the DICOM header says this is not a frontal chest X-ray" in m.value for m in at.markdown)
    assert any(w.value.startswith("The DICOM header says this is not a frontal chest X-ray (its view is LL") and
               w.value.endswith("Read the film without the model.") for w in at.warning)


def test_diagnose_says_why_a_raw_detector_dicom_gets_no_verdict(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app_helpers import APP, app_env

    app_env(tmp_path, monkeypatch)
    at = AppTest.from_file(APP, default_timeout=60).run()
    raw = _film({"PresentationIntentType": "FOR PROCESSING"})
    at.file_uploader(key="diag_upload").set_value(("raw.dcm", raw, "application/dicom"))
    at.run()
    assert not at.exception, at.exception
    assert any("No verdict: the DICOM header says this is a raw detector image, not the processed film" in m.value
               for m in at.markdown)
    assert any(w.value.startswith("The DICOM header says this is a raw detector image (FOR PROCESSING)") and
               "send the FOR PRESENTATION image" in w.value for w in at.warning)
