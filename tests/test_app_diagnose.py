"""AppTest of the Diagnose page: verdict, heatmap, bad files, many files, no model."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import APP, app_env, png_bytes, xray_array

TIMEOUT = 60


@pytest.fixture
def weights(tmp_path, monkeypatch):
    return app_env(tmp_path, monkeypatch, broken=True)


def _verdicts_before_validation(at):
    """Turn on the sidebar's research switch: verdicts although no site file validates the model."""
    at.toggle(key="diag_unvalidated").set_value(True)
    return at


def _column_config(dataframe) -> dict:
    """{column: its configuration as the browser receives it (JSON text)} of an AppTest dataframe."""
    import json

    return {k.removeprefix("name:"): json.dumps(v) for k, v in json.loads(dataframe.proto.columns).items()}


def _all_text(at) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.error] + [w.value for w in at.warning] + \
        [i.value for i in at.info] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def test_no_model_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_XRAY_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("COVID_CORE_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    text = _all_text(at)
    assert "Research use only" in text
    assert "No usable classifier" in text and "Train" in text


def test_one_image_gives_verdict_heatmap_and_report(weights):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _verdicts_before_validation(at)
    assert not at.exception
    assert "tiny_cnn.pt" in at.selectbox(key="diag_model").value
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png"))
    at.run()
    assert not at.exception, at.exception
    text = _all_text(at)
    assert "COVID-19: positive" in text or "COVID-19: negative" in text
    # the stored TEST rates at the threshold, each with the counts it comes from
    assert "| sensitivity | 90.0% (9 of 10) |" in text and "| specificity | 75.0% (15 of 20) |" in text
    images = at.get("image")
    assert len(images) == 2  # the original and the Grad-CAM overlay
    # the heatmap's two checks; the first words of their labels stay visible in a 1024 px window
    hiding = [m for m in at.metric if m.label == "Hiding it lowers the call?"][0]
    answer, change = hiding.value.split(": ")
    # "yes" exactly when hiding the highlight lowers the probability, shown as the change (the warning's sign)
    assert (answer == "yes") == change.startswith("-") and change.endswith(" pts")
    assert any(m.label == "Highlight inside the chest" for m in at.metric)
    # the three-class call in words heads the verdict, and the page says the model was not validated here
    assert any(words in text for words in ("No pneumonia seen", "Pneumonia, not COVID-19-like",
                                           "COVID-19-like pneumonia"))
    assert "Not validated at your hospital" in text
    assert any("report" in d.proto.label.lower() for d in at.get("download_button"))
    # the unusable checkpoint is listed with its reason, not hidden
    unusable = at.sidebar.expander[0]
    assert "1 unusable" in unusable.label and "broken.pt" in unusable.caption[0].value


def _one_film_before_validation(tmp_path, monkeypatch, covid_threshold: float):
    """The Diagnose page with verdicts before validation, after one synthetic film: (the AppTest, all its text)."""
    app_env(tmp_path, monkeypatch, covid_threshold=covid_threshold)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _verdicts_before_validation(at)
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png"))
    at.run()
    assert not at.exception, at.exception
    return at, _all_text(at)


def test_positive_verdict_shows_ppv_and_what_a_positive_is_worth(tmp_path, monkeypatch):
    at, text = _one_film_before_validation(tmp_path, monkeypatch, 0.0)  # every film is COVID-19 positive
    assert "COVID-19: positive" in text
    assert "| **PPV** | 64.3% (9 of 14) |" in text and "| NPV | 93.8% (15 of 16) |" in text  # this verdict's value
    limits = [i.value for i in at.info if "PPV" in i.value]
    assert len(limits) == 1 and "64.3%" in limits[0] and "10 of the 30 TEST films" in limits[0]


def test_negative_verdict_stresses_npv_and_has_no_positive_verdict_limits(tmp_path, monkeypatch):
    at, text = _one_film_before_validation(tmp_path, monkeypatch, 1.0)  # no film of this untrained model reaches it
    assert "COVID-19: negative" in text and "| **NPV** | 93.8% (15 of 16) |" in text and "| PPV |" in text
    assert not [i.value for i in at.info if "PPV" in i.value]
    # a negative verdict shows its limits too: its NPV with where it comes from, and what a negative does not say
    limits = [i.value for i in at.info if i.value.startswith("On TEST")]
    assert len(limits) == 1 and "93.8%" in limits[0] and "10 of the 30 films" in limits[0]
    assert any("is not a normal film" in i.value for i in at.info)


def test_a_film_unlike_the_training_data_gets_no_verdict(tmp_path, monkeypatch):
    # every film is both above the COVID-19 threshold and out of distribution
    app_env(tmp_path, monkeypatch, covid_threshold=0.0, ood_threshold=-1.0)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value([("a.png", png_bytes(xray_array(64, 1)), "image/png"),
                                                   ("b.png", png_bytes(xray_array(64, 2)), "image/png")])
    at.run()
    assert not at.exception, at.exception
    text = _all_text(at)
    assert "No verdict: this film is unlike the X-rays the model learned from" in text
    assert "COVID-19: positive" not in text
    assert not [i.value for i in at.info if "PPV" in i.value]  # no "what a positive is worth": there is none
    assert any("has not seen films like this one" in w.value for w in at.warning)  # why, in plain words
    assert "On TEST at this threshold" not in text  # no verdict, so no verdict's reliability
    assert len(at.get("image")) == 1  # the film, but no heatmap "evidence" for a call that was not made
    assert any(e.label.startswith("Raw model output") for e in at.expander)  # raw figures only for researchers
    table = at.dataframe[0].value
    assert set(table["verdict"]) == {"No verdict: the image is unlike the training X-rays"}
    assert set(table["call"]) == {"No verdict"}  # the reason once, in the verdict column, wide enough to read
    assert '"width": 380' in _column_config(at.dataframe[0])["verdict"]
    assert table["COVID-19 probability"].isna().all() and not [c for c in table.columns if c.startswith("p(")]
    # the empty probability and error columns are out of view (no column of "None"), the CSV keeps them
    assert list(at.dataframe[0].proto.column_order) == ["file", "call", "verdict", "out of distribution"]


def test_a_blank_film_is_refused_not_classified(weights):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("black.png", png_bytes(np.zeros((64, 64), np.uint8)), "image/png"))
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "black.png" in errors[0] and "blank" in errors[0]
    assert "COVID-19: " not in _all_text(at)


def test_bad_file_fails_alone_and_table_lists_all(weights):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _verdicts_before_validation(at)
    at.file_uploader(key="diag_upload").set_value([
        ("a.png", png_bytes(xray_array(64, 1)), "image/png"),
        ("notes.png", b"this is a text file, not an image", "image/png"),
        ("b.png", png_bytes(xray_array(64, 2)), "image/png"),
    ])
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "notes.png" in errors[0] and "text file" in errors[0]
    table = at.dataframe[0].value
    assert list(table["file"]) == ["a.png", "notes.png", "b.png"]
    assert table["verdict"].str.startswith("COVID-19").sum() == 2
    # verdicts before site validation are marked as such in the table (and its CSV), with the reason beneath
    assert table["verdict"].str.endswith("(unconfirmed)").sum() == 2
    assert any("Verdicts marked unconfirmed" in c.value for c in at.caption)
    shown = set(at.dataframe[0].proto.column_order)
    assert {"p(covid19)", "error"} <= shown  # shown where filled
    assert "COVID-19 probability" not in shown and "COVID-19 probability" in table  # = p(covid19): in view once
    assert '"width": 215' in _column_config(at.dataframe[0])["verdict"]  # room left for the probabilities
    assert any("CSV" in d.proto.label for d in at.get("download_button"))


def test_two_files_with_one_name_are_told_apart(weights):
    # 1.png from two folders: the table and the case picker name the second "1.png (2)", and picking it shows it.
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value([("1.png", png_bytes(xray_array(64, 1)), "image/png"),
                                                   ("1.png", png_bytes(xray_array(64, 2)), "image/png")])
    at.run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["file"]) == ["1.png", "1.png (2)"]
    picker = at.selectbox(key="diag_case")
    assert picker.options == ["1.png", "1.png (2)"]
    first = [s.key for s in at.slider if s.key and s.key.startswith("wl_")]
    picker.set_value("1.png (2)").run()
    assert not at.exception, at.exception
    second = [s.key for s in at.slider if s.key and s.key.startswith("wl_")]
    assert first and second and first != second  # the window sliders belong to the other film now


def test_batch_over_the_file_cap_analyses_the_first_files_and_says_so(weights, monkeypatch):
    monkeypatch.setenv("COVID_XRAY_MAX_FILES", "3")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(
        [(f"x{i}.png", png_bytes(xray_array(48, i)), "image/png") for i in range(5)])
    at.run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["file"]) == ["x0.png", "x1.png", "x2.png"]
    warning = [w.value for w in at.warning if "files uploaded" in w.value]
    assert warning and "only the first 3" in warning[0] and "x3.png, x4.png" in warning[0]


def _dicom_bytes() -> bytes:
    import io

    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = "Doe^Jane", "PID-7781-ZX", "CR"
    pixels = (xray_array(64).astype(np.uint16) * 16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_dicom_window_sliders_and_patient_fields_hidden_by_default(weights):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.toggle(key="diag_dae").set_value(True)
    at.file_uploader(key="diag_upload").set_value(("chest.dcm", _dicom_bytes(), "application/dicom")).run()
    assert not at.exception, at.exception
    sliders = [s.label for s in at.main.slider]
    assert "Window level" in sliders and "Window width" in sliders
    shown = lambda: " ".join(t.value.to_string() for t in at.table) + _all_text(at)  # noqa: E731
    assert "DICOM" in shown() or at.expander  # the technical header is available
    assert "Doe^Jane" not in shown() and "PID-7781-ZX" not in shown()
    assert any("No denoising autoencoder found" in i.value for i in at.info)  # the tmp weights hold no dae.pt
    box = next(c for c in at.checkbox if c.label.startswith("Show patient fields"))
    box.check().run()
    assert "Doe^Jane" in shown() and "PID-7781-ZX" in shown()


def test_uploads_are_never_written_to_disk(weights, tmp_path, monkeypatch):
    """An uploaded file's bytes appear in no file written during the session (repo, temp, caches, home)."""
    import os
    import tempfile
    import time
    import uuid
    from pathlib import Path

    from app_helpers import REPO

    marker = f"UPLOAD-MARKER-{uuid.uuid4().hex}".encode()
    payload = png_bytes(xray_array(64, 5)) + marker  # bytes after IEND are ignored by PNG readers
    started = time.time() - 1
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.toggle(key="diag_dae").set_value(True)
    at.file_uploader(key="diag_upload").set_value(("private.png", payload, "image/png")).run()
    assert not at.exception, at.exception
    assert "COVID-19:" in _all_text(at)  # it was analysed
    scanned = 0
    for root in {REPO, tmp_path, Path(tempfile.gettempdir()), Path.home() / ".cache"}:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for name in filenames:
                path = Path(dirpath, name)
                try:
                    if path.is_symlink() or path.stat().st_mtime < started or path.stat().st_size > 200 * 2**20:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                scanned += 1
                assert marker not in data, f"upload bytes found in {path}"
                assert b"private.png" not in data or path.suffix in (".py", ".pyc"), f"upload name logged in {path}"
    assert scanned >= 1, "nothing was scanned: the walk itself is broken"


def _site_file(checkpoint, path, sha=None, parameters=None, given=None, after=None):
    import json

    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    after = after or {"sensitivity": {"value": 0.9, "low": 0.8, "high": 0.97},
                      "specificity": {"value": 0.85, "low": 0.75, "high": 0.93}}
    path.write_text(json.dumps({
        "format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {"sha256": sha or file_sha256(checkpoint)},
        "parameters": parameters or {}, "after": {**after, **({"given": {**after, **given}} if given else {})}}))


def test_a_site_file_beside_the_model_says_where_and_how_well_it_was_validated(weights):
    _site_file(weights / "tiny_cnn.pt", weights / "tiny_cnn.site.json")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    [validated] = [s.value for s in at.success if "Validated at" in s.value]
    assert "St Elsewhere" in validated and "sensitivity 90% (95% CI 80-97%)" in validated
    assert "Not validated at your hospital" not in _all_text(at) and "Unconfirmed" not in _all_text(at)
    assert "That is poor" not in validated and "Often wrong here" not in _all_text(at)


def _one_film_at_site(tmp_path, monkeypatch, after: dict):
    """The Diagnose page after one film, with a site file whose figures after adaptation are ``after`` made active
    beside the model, and every film positive at the stored threshold."""
    weights = app_env(tmp_path, monkeypatch, covid_threshold=0.0)
    _site_file(weights / "tiny_cnn.pt", weights / "tiny_cnn.site.json", after=after)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    return at


def test_a_verdict_at_a_site_validated_on_too_few_films_is_unconfirmed_and_says_why(tmp_path, monkeypatch):
    """A site file whose sensitivity (88%) rests on so few films that it could be as low as 53%: the verdict is
    drawn as unsettled and the validation statement says that more films are needed."""
    at = _one_film_at_site(tmp_path, monkeypatch, {"sensitivity": {"value": 0.875, "low": 0.53, "high": 0.98},
                                                   "specificity": {"value": 0.9, "low": 0.8, "high": 0.96},
                                                   "auc": {"value": 0.93}})
    text = _all_text(at)
    assert "COVID-19: positive" in text and "2px dashed" in text
    assert "Unconfirmed: St Elsewhere's labelled films are too few to know how often this model is right here" in text
    assert "Often wrong here" not in text
    [validated] = [w.value for w in at.warning if "Validated at" in w.value]
    assert "Too few films to confirm it: its sensitivity of 88% could be as low as 53% (95% interval)" in validated
    assert "That is poor" not in validated


def test_a_verdict_at_a_site_where_the_model_did_poorly_says_so_and_is_not_drawn_as_settled(tmp_path, monkeypatch):
    """The Validate page warned that the model did poorly on the site's films and the file was made active anyway:
    a clinician reading a verdict there is told so with the verdict, not only the one who made the file active."""
    at = _one_film_at_site(tmp_path, monkeypatch, {"sensitivity": {"value": 0.55, "low": 0.4, "high": 0.7},
                                                   "specificity": {"value": 0.6, "low": 0.45, "high": 0.74},
                                                   "auc": {"value": 0.62}})
    text = _all_text(at)
    assert "COVID-19: positive" in text
    assert "Often wrong here: this model did poorly on St Elsewhere's own labelled films" in text
    assert "2px dashed" in text
    [validated] = [w.value for w in at.warning if "Validated at" in w.value]
    assert ("That is poor: on those films, even after adaptation, its COVID-19 score ranks them with an AUC of 0.62 "
            "and its verdicts have sensitivity 55% and specificity 60%") in validated
    assert not [s.value for s in at.success if "Validated at" in s.value]

    at.file_uploader(key="diag_upload").set_value([("a.png", png_bytes(xray_array(64, 1)), "image/png"),
                                                   ("b.png", png_bytes(xray_array(64, 2)), "image/png")]).run()
    assert not at.exception, at.exception
    # a batch's table, read without opening a case, says it too, and so does its CSV's site column
    assert any(c.value.startswith(":material/warning: Often wrong here: on St Elsewhere's own labelled films")
               for c in at.caption)


def test_at_a_validated_site_the_verdicts_worth_comes_from_the_sites_films(tmp_path, monkeypatch):
    """The site kept the shipped threshold: its own PPV leads the verdict's limits; TEST's stays in the details."""
    weights = app_env(tmp_path, monkeypatch, covid_threshold=0.0)  # every film positive at the stored threshold
    _site_file(weights / "tiny_cnn.pt", weights / "tiny_cnn.site.json",
               given={"films": 190, "withheld": 16, "counts": {"tp": 46, "fp": 19, "fn": 4, "tn": 105}})
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    assert "COVID-19: positive" in _all_text(at)
    limits = [i.value for i in at.info if "PPV" in i.value]
    assert limits and limits[0].startswith("At St Elsewhere, 70.8% (95% CI 59-80%) of the positive verdicts on its "
                                           "own labelled films were right (PPV, 46 of 65)")
    assert not any(i.value.startswith("On TEST") for i in at.info)
    [validated] = [s.value for s in at.success if "Validated at" in s.value]
    assert "on the 174 of its 190 labelled films that got a verdict" in validated and "PPV" not in validated
    assert any("| **PPV** |" in m.value for m in at.markdown)  # the shipped threshold's TEST rates, in the details


def test_a_site_file_made_for_another_model_is_not_applied(weights):
    _site_file(weights / "tiny_cnn.pt", weights / "tiny_cnn.site.json", sha="0" * 64)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    assert any("was not applied" in w.value and "another model" in w.value for w in at.warning)
    assert "Not validated at your hospital" in _all_text(at)
    assert "No verdict: this model is not validated at your hospital" in _all_text(at)


def test_without_a_site_file_no_verdict_is_given_unless_a_researcher_asks(tmp_path, monkeypatch):
    app_env(tmp_path, monkeypatch, covid_threshold=0.0)  # the raw output is COVID-19 positive for every film
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    text = _all_text(at)
    assert "No verdict: this model is not validated at your hospital" in text and "COVID-19: positive" not in text
    assert any("44-91%" in w.value and "Validate page" in w.value for w in at.warning)  # why, and how to get one
    assert [link.proto.page for link in at.get("page_link")] == ["validate"]  # a link to the Validate page
    assert not [i.value for i in at.info if "PPV" in i.value] and "| **PPV** |" not in text
    assert len(at.get("image")) == 1  # no heatmap evidence for a call that was not made
    # the heatmap's place beside the film holds the call and its reason, seen with the film, not below it
    film = [c for c in at.columns if len(c.get("image")) == 1]
    call = [c for c in at.columns if any("No verdict: this model is not validated" in m.value for m in c.markdown)]
    assert len(film) == 1 and len(call) == 1 and film[0] is not call[0]
    assert any("44-91%" in w.value for w in call[0].warning)
    assert any(e.label.startswith("Raw model output") for e in at.expander)
    _verdicts_before_validation(at).run()  # research use: the verdict, marked unconfirmed
    assert not at.exception, at.exception
    text = _all_text(at)
    assert "COVID-19: positive" in text and "Unconfirmed: this model has not been validated at your hospital" in text


def test_a_site_file_made_active_while_a_film_is_open_gives_the_sites_verdict(tmp_path, monkeypatch):
    """A case analysed before the site file existed is not shown again as if the site had judged it."""
    weights = app_env(tmp_path, monkeypatch, covid_threshold=0.0)  # the stored threshold: every film positive
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _verdicts_before_validation(at)
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    assert "COVID-19: positive" in _all_text(at)
    # the site's own operating point: no film reaches it
    calls = {"normal": {"normal": 40, "pneumonia": 10}, "pneumonia": {"normal": 8, "pneumonia": 42}}  # confirmed
    _site_file(weights / "tiny_cnn.pt", weights / "tiny_cnn.site.json", parameters={"threshold": 1.01},
               after={"sensitivity": {"value": 0.9, "low": 0.8, "high": 0.97},
                      "specificity": {"value": 0.85, "low": 0.75, "high": 0.93}, "calls": calls})
    at.run()
    assert not at.exception, at.exception
    text = _all_text(at)
    assert any("Validated at" in s.value for s in at.success)
    assert "COVID-19: negative" in text and "COVID-19: positive" not in text
    # the verdict now comes from the site's threshold: the shipped threshold's TEST rates do not describe it
    assert "| sensitivity | 90.0% (9 of 10) |" not in text and "On TEST" not in text
    assert "operating point validated at St Elsewhere" in text
    assert "A negative COVID-19 verdict is not a normal film" in text


def _results_table_of_a_site_head():
    import os
    import sys

    import pandas as pd

    sys.path.insert(0, os.environ["TEST_APP_DIR"])
    import ui

    ui.results_table(pd.DataFrame([{"file": "a.png", "call": "No pneumonia seen", "verdict": "COVID-19: negative",
                                    "COVID-19 probability": 0.12, "out of distribution": False, "p(normal)": 0.7,
                                    "p(pneumonia)": 0.2, "p(covid19)": 0.1, "error": ""}]))


def test_a_site_heads_covid_probability_differs_from_the_class_column_and_stays_in_view(monkeypatch):
    """With a site's head the verdict's probability is not p(covid19): both are shown, in columns that still fit."""
    from pathlib import Path

    monkeypatch.setenv("TEST_APP_DIR", str(Path(APP).parent))
    at = AppTest.from_function(_results_table_of_a_site_head, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert "COVID-19 probability" in at.dataframe[0].proto.column_order
    widths = {c: __import__("json").loads(v).get("width") for c, v in _column_config(at.dataframe[0]).items()}
    assert widths["verdict"] == 140 and widths["p(covid19)"] == 75
    kinds = {c: __import__("json").loads(v).get("type_config", {}).get("type") for c, v in
             _column_config(at.dataframe[0]).items()}
    assert kinds["COVID-19 probability"] == "progress"  # drawn as the class columns: no "None" for a withheld film
    assert sum(widths[c] for c in at.dataframe[0].proto.column_order) <= 938  # the grid's width at 1400 px


def test_the_results_csv_names_the_model_and_the_site_validation_on_every_row(tmp_path):
    """A saved results file can be traced to the weights and the site file that produced its verdicts."""
    import io
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    import pandas as pd

    from covid_core.report import prediction_row
    from covid_core.site_file import Site

    sys.path.insert(0, str(Path(APP).parent))
    import ui

    table = pd.DataFrame([prediction_row("a.png", None, "broken"), prediction_row("b.png", None, "blank")])
    entry = SimpleNamespace(label="resnet18.pt", fingerprint="f8a9e90f2e19")
    saved = pd.read_csv(io.StringIO(ui.results_csv(table, entry, SimpleNamespace(site=None))))
    assert list(saved.columns[-2:]) == ["model", "site validation"] and list(saved["file"]) == ["a.png", "b.png"]
    assert set(saved["model"]) == {"resnet18.pt (f8a9e90f2e19)"}
    assert set(saved["site validation"]) == {"none: not validated at this hospital"}
    site = Site(name="=HYPERLINK(1)", created="2026-12-05T10:00:00+0000", version="0123abcd")
    saved = pd.read_csv(io.StringIO(ui.results_csv(table, entry, SimpleNamespace(site=site))))
    assert set(saved["site validation"]) == {"'=HYPERLINK(1), made 2026-12-05T10:00:00+0000, site file version "
                                             "0123abcd"}  # a site name is never read as a spreadsheet formula
    poor = Site(name="St Elsewhere", sensitivity={"value": 0.55}, specificity={"value": 0.6})
    saved = pd.read_csv(io.StringIO(ui.results_csv(table, entry, SimpleNamespace(site=poor))))
    assert set(saved["site validation"]) == {"St Elsewhere; the model did poorly there (its verdicts have sensitivity "
                                             "55% and specificity 60%)"}


def test_a_files_name_is_shown_as_it_is_not_as_markdown(weights):
    """A name that reads as Markdown (a link, LaTeX, emphasis, a colour directive) is escaped wherever the page
    shows it, in the case's title and in a refusal; the browser then shows the name's own characters."""
    name = "$x$ [a](http:evil.example) *b* :red[c] <b>d.png"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value((name, png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    [title] = [h.value for h in at.subheader if "evil" in h.value]
    assert title == r"\$x\$ \[a\](http\:evil.example) \*b\* \:red\[c\] \<b\>d.png"
    at.file_uploader(key="diag_upload").set_value((name, b"not an image", "image/png")).run()
    assert any(e.value.startswith(r"**\$x\$ \[a\](http\:evil.example)") for e in at.error)


def test_a_dicom_headers_text_is_shown_as_it_is_not_as_markdown(weights):
    """Whoever made a DICOM file wrote its header. A Manufacturer or patient name that reads as Markdown (an image
    fetched from another host, a link, emphasis) is escaped in the page's tables, which render Markdown, so the
    browser shows the header's own characters and fetches nothing."""
    from covid_core.formatting import markdown_plain
    from synthetic_files import dicom_bytes

    maker = "![seen](http://evil.example/pixel.png) **ACME**"
    patient = "[call me](http://evil.example/)"
    film = dicom_bytes(xray_array(64).astype(np.uint16) * 16, header={"Manufacturer": maker}, patient_name=patient)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.dcm", film, "application/dicom")).run()
    assert not at.exception, at.exception
    next(c for c in at.checkbox if c.label.startswith("Show patient fields")).check().run()
    cells = {str(k): str(v) for t in at.table for k, v in t.value.itertuples(index=False)}
    assert cells["Manufacturer"] == markdown_plain(maker) == "\\!\\[seen\\](http\\:\u2060//evil.example/pixel.png) \\*\\*ACME\\*\\*"
    assert cells["PatientName"] == markdown_plain(patient)
