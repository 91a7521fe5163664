"""Seeded random mutation of what users hand the product: images of every format (DICOMs in each compression
among them) through decode + predict, a site's zip of labelled films, a metadata CSV, a hand-edited site file, and
random layouts of a site's films among patients and classes.

Each input must either go through or raise a CovidCoreError (a message for the user): any other exception, or an
image taking over 5 s, fails the test. The number of images is ``$COVID_FUZZ_INPUTS`` (default 2,000; half as many
zips, a quarter as many CSVs, a tenth as many site files, a 200th as many site layouts); the counts are printed (run
with ``-s`` to see them).
"""

from __future__ import annotations

import io
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from covid_core.decode import decode_image
from covid_core.errors import CovidCoreError
from covid_core.inference import predict
from synthetic_files import (dicom_bytes, dicom_gradient, dicom_with_many_elements, edit_at_random, encode, gradient,
                             lossless_jpeg, tiny_classifier, value_places)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coronahack-mini"
N_INPUTS = int(os.environ.get("COVID_FUZZ_INPUTS", "2000"))
SEED = int(os.environ.get("COVID_FUZZ_SEED", "20240607"))
MAX_SECONDS = 5.0


def _compressed_dicoms(g: np.ndarray) -> list[tuple[bytes, str]]:
    """The 8-bit gradient ``g`` as DICOMs in each compression a PACS exports, each through its own decoder: JPEG
    baseline and JPEG Lossless (pylibjpeg-libjpeg), JPEG 2000 lossless and lossy (pylibjpeg-openjpeg), RLE
    (pylibjpeg-rle, written in Rust), the data set deflated, and Implicit VR."""
    import openjpeg
    from pydicom import dcmread
    from pydicom.uid import (JPEG2000, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1,
                             RLELossless)

    g12 = g.astype(np.uint16) * 16
    eight_bits = {"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}
    rle = dcmread(io.BytesIO(dicom_gradient()))
    rle.compress(RLELossless)
    rle_file = io.BytesIO()
    rle.save_as(rle_file)
    return [
        (dicom_bytes(g, transfer_syntax=JPEGBaseline8Bit, encapsulated=encode(g, "JPEG"), header=eight_bits), "jb.dcm"),
        (dicom_bytes(g12, transfer_syntax=JPEGLosslessSV1, encapsulated=lossless_jpeg(g12)), "ll.dcm"),
        (dicom_bytes(g12, transfer_syntax=JPEG2000Lossless, encapsulated=bytes(openjpeg.encode(g12, bits_stored=12))),
         "j2k.dcm"),
        (dicom_bytes(g12, transfer_syntax=JPEG2000,
                     encapsulated=bytes(openjpeg.encode(g12, bits_stored=12, compression_ratios=[10]))), "j2kl.dcm"),
        (rle_file.getvalue(), "rle.dcm"),
        (dicom_with_many_elements(20, deflated=True), "deflated.dcm"),
        (dicom_gradient(transfer_syntax=ImplicitVRLittleEndian), "implicit.dcm"),
    ]


def _seed_files() -> list[tuple[bytes, str]]:
    """Valid files of every supported format (plus up to 3 real X-ray JPEGs when the data is present)."""
    g = gradient(64)
    rgb = np.dstack([g, g[::-1], g.T])
    seeds = [
        (encode(g, "PNG"), "a.png"), (encode(rgb, "PNG"), "rgb.png"),
        (encode(g.astype(np.uint16) * 257, "PNG"), "deep.png"),
        (encode(g, "JPEG", quality=90), "a.jpg"), (encode(rgb, "JPEG", progressive=True), "p.jpg"),
        (encode(g, "TIFF"), "a.tif"), (encode(g, "TIFF", compression="tiff_lzw"), "lzw.tif"),
        (encode(Image.fromarray(g.astype(np.float32) / 255, "F"), "TIFF"), "f.tif"),
        (encode(g, "BMP"), "a.bmp"), (encode(Image.fromarray(g).convert("P"), "PNG"), "pal.png"),
        (dicom_gradient(), "a.dcm"), (dicom_gradient(photometric="MONOCHROME1"), "m1.dcm"),
        *_compressed_dicoms(g),
    ]
    if DATA.is_dir():
        real = sorted(DATA.rglob("*.jpeg"))[:3] + sorted(DATA.rglob("*.jpg"))[:3]
        seeds += [(p.read_bytes(), p.name) for p in real[:3]]
    return seeds


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """1-4 random edits: bit flips, byte runs overwritten, cuts, insertions, duplicated blocks,
    and headers bytes set to extremes (where sizes and offsets live)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        kind = rng.randrange(7)
        pos = rng.randrange(len(buf))
        head = rng.randrange(min(len(buf), 400))  # headers sit in the first few hundred bytes
        if kind == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            for i in range(head, min(len(buf), head + rng.randint(1, 8))):
                buf[i] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif kind == 2:
            del buf[rng.randrange(len(buf)):]
        elif kind == 3:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif kind == 4:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start:start + rng.randint(1, 256)]
        elif kind == 5:
            buf[head] = rng.randrange(256)
        else:
            end = min(len(buf), pos + rng.randint(1, 64))
            del buf[pos:end]
    return bytes(buf)


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def test_fuzzed_images_never_crash_or_hang(tmp_path):
    classifier = tiny_classifier(tmp_path, image_size=64)
    seeds = _seed_files()
    rng = random.Random(SEED)
    counts = {"classified": 0, "refused": 0}
    failures, slowest = [], (0.0, None)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    # One thread: batch-of-one inference on a shared 2-core machine is ~8x faster than with two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        for i in range(N_INPUTS):
            seed_data, name = seeds[i % len(seeds)]
            data = _mutate(seed_data, rng)
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, MAX_SECONDS + 1)
            try:
                result = predict(classifier, decode_image(data, name))
                if not (np.isfinite(list(result.probabilities.values())).all()):
                    failures.append((i, name, "non-finite probabilities"))
                counts["classified"] += 1
            except CovidCoreError as exc:
                if not str(exc).strip() or "\n" in str(exc):
                    failures.append((i, name, f"message not one clear line: {exc!r}"))
                counts["refused"] += 1
            except _Timeout:
                failures.append((i, name, f"hung over {MAX_SECONDS + 1:.0f} s"))
            except BaseException as exc:  # the point of the test: anything else is a crash, a Rust decoder's
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):  # panic (a BaseException) included
                    raise
                failures.append((i, name, f"{type(exc).__name__}: {exc}"))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - t0
            if elapsed > slowest[0]:
                slowest = (elapsed, name)
            if elapsed > MAX_SECONDS:
                failures.append((i, name, f"took {elapsed:.1f} s"))
    finally:
        signal.signal(signal.SIGALRM, previous)
        torch.set_num_threads(threads)
    total = time.perf_counter() - started
    print(f"\nfuzz: {N_INPUTS} inputs from {len(seeds)} seed files (seed {SEED}) in {total:.1f} s: "
          f"{counts['classified']} classified, {counts['refused']} refused with a message, "
          f"{len(failures)} failures; slowest input {slowest[0] * 1000:.0f} ms ({slowest[1]})")
    assert N_INPUTS >= 1 and counts["classified"] + counts["refused"] + len(failures) >= N_INPUTS
    assert not failures, "\n".join(f"input {i} ({name}): {why}" for i, name, why in failures[:20])
    # A fuzzer that never gets past the decoders tests nothing downstream.
    assert counts["classified"] > N_INPUTS // 20 and counts["refused"] > N_INPUTS // 20


@pytest.mark.parametrize("seed_index", range(3))
def test_mutation_is_reproducible(seed_index):
    data, _ = _seed_files()[seed_index]
    assert _mutate(data, random.Random(seed_index)) == _mutate(data, random.Random(seed_index))


def _outcomes(inputs, attempt) -> tuple[dict, list[str]]:
    """Run ``attempt(i, data)`` on each input: it must return or raise a CovidCoreError of one clear line; anything
    else (a BaseException included) is a failure, named with its input's number."""
    counts, failures = {"read": 0, "refused": 0}, []
    for i, data in enumerate(inputs):
        try:
            attempt(i, data)
            counts["read"] += 1
        except CovidCoreError as exc:
            counts["refused"] += 1
            if not str(exc).strip() or "\n" in str(exc):
                failures.append(f"input {i}: message not one clear line: {exc!r}")
        except BaseException as exc:  # the point of the test
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            failures.append(f"input {i}: {type(exc).__name__}: {exc}")
    return counts, failures


def test_fuzzed_zips_of_films_unpack_or_are_refused_with_a_reason(tmp_path):
    """A site's zip of labelled films (Validate page), mutated at random. Before damaged members were handled,
    1,733 of 3,000 such zips raised zipfile's own errors, a traceback on the page."""
    import zipfile

    from covid_core.archive import extract_labelled_zip

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, cls in enumerate(("normal", "covid19")):
            for i in range(3):
                z.writestr(f"site/{cls}/{i}.png", encode(gradient(32), "PNG"),
                           compress_type=(zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)[(i + k) % 2])
        z.writestr("site/covid19/IM0001", dicom_gradient(32))
        z.writestr("site/notes.txt", "exported by the PACS")
    rng = random.Random(SEED)
    zips = [_mutate(buf.getvalue(), rng) for _ in range(N_INPUTS // 2)]
    counts, failures = _outcomes(zips, lambda i, data: extract_labelled_zip(data, tmp_path / str(i)))
    print(f"\nfuzz: {len(zips)} zips: {counts}, {len(failures)} failures")
    assert not failures, "\n".join(failures[:20])
    assert counts["read"] > len(zips) // 20 and counts["refused"] > len(zips) // 20
    assert {p.name for p in tmp_path.iterdir()} <= {str(i) for i in range(len(zips))}  # nothing outside its folder


def test_fuzzed_metadata_csvs_load_or_are_refused_with_a_reason(tmp_path):
    """A CoronaHack-layout metadata CSV, mutated at random (the films stay valid)."""
    from covid_core.datasets import load_dataset

    films = tmp_path / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset"
    lines = ["X_ray_image_name,Label,Dataset_type,Label_2_Virus_category,Label_1_Virus_category"]
    for i in range(12):
        split = ("train", "test")[i % 2]
        (films / split).mkdir(parents=True, exist_ok=True)
        (films / split / f"f{i}.jpeg").write_bytes(encode(gradient(16), "JPEG"))
        label, l2 = [("Normal", ""), ("Pnemonia", ""), ("Pnemonia", "COVID-19")][i % 3]
        lines.append(f"f{i}.jpeg,{label},{split.upper()},{l2},")
    clean = ("\n".join(lines) + "\n").encode()
    rng = random.Random(SEED)
    csvs = [_mutate(clean, rng) for _ in range(N_INPUTS // 4)]

    def load(i, data):
        (tmp_path / "Chest_Xray_Corona_Metadata.csv").write_bytes(data)
        load_dataset(tmp_path)

    counts, failures = _outcomes(csvs, load)
    print(f"\nfuzz: {len(csvs)} metadata CSVs: {counts}, {len(failures)} failures")
    assert not failures, "\n".join(failures[:20])
    assert counts["read"] > len(csvs) // 50 and counts["refused"] > len(csvs) // 20  # most edits break the header


@pytest.mark.parametrize("kind", ["3class", "pneumonia"])
def test_fuzzed_site_files_are_refused_or_give_finite_verdicts_with_their_words(tmp_path, kind):
    """A site file is plain JSON beside the model, open to hand edits: its values are replaced at random by wrong
    types, extremes and NaN, or dropped. Each must be refused as damaged or give finite probabilities and every
    text a verdict shows, and the Models page must show what it holds. Before the checks, 1e308 in the head gave a
    NaN probability read as a negative verdict, and a figure of the wrong kind where a verdict does not read it
    (the shipped model's AUC, the counts by label) broke the Models page. The site files of a normal/pneumonia model,
    which validate its call alone, are edited too."""
    import json
    import math

    from app_helpers import make_checkpoint, make_pneumonia_checkpoint, make_site_folder, png_bytes, xray_array
    from covid_core import verdict
    from covid_core.cli import main as cli_main
    from covid_core.explain import explain
    from covid_core.report import case_report_html, prediction_row
    from covid_core.site_file import load_classifier_at_site
    from covid_core.site_job import (adaptation_lines, call_rows, call_text, comparison_rows, given_rates_text,
                                     poor_site_warning, predictive_values_text, report_counts, sample_size_text,
                                     site_history_rows)

    model = (make_checkpoint if kind == "3class" else make_pneumonia_checkpoint)(tmp_path / "model.pt")
    films = make_site_folder(tmp_path / "site", per_class=12, classes=("normal", "pneumonia", "covid19"))
    made = tmp_path / "site.json"
    assert cli_main(["validate-site", "--model", str(model), "--data", str(films), "--out", str(made),
                     "--name", "St Elsewhere"]) == 0
    clean = json.loads(made.read_text())
    assert clean["after"]["calls"]  # the call's counts are edited too
    where = value_places(clean)  # a pneumonia head is checked as the COVID-19 head is; its 769 numbers, left out of
    clean["parameters"].setdefault("pneumonia_head", {"mean": [0.0] * 256, "scale": [1.0] * 256,  # the edits, would
                                                      "coef": [0.01] * 256, "intercept": 0.0})  # crowd out the rest
    film = decode_image(png_bytes(xray_array(64)), "film.png")

    rng = random.Random(SEED)
    edits = []
    for _ in range(N_INPUTS // 10):
        site = json.loads(json.dumps(clean))
        edit_at_random(site, where, rng, delete_share=0.15)
        edits.append(json.dumps(site))

    def verdict_at_site(i, text):
        path = tmp_path / "edited.json"
        path.write_text(text)
        assert site_history_rows([path])[0]["file"] == "edited.json"  # the Models page lists retired files as read
        classifier = load_classifier_at_site(model, path)
        report = json.loads(text)  # what the Models page shows of the active site file beside its verdicts
        assert [row[""] for row in comparison_rows(report)] and isinstance(poor_site_warning(report), str)
        assert all(isinstance(f(report), str) for f in (given_rates_text, predictive_values_text, sample_size_text))
        assert all(isinstance(n, int) for n in report_counts(report).values())
        assert all(isinstance(line, str) for _, line in adaptation_lines(report))
        assert isinstance(call_rows(report), list) and isinstance(call_text(report), str)
        p = predict(classifier, film)
        assert all(math.isfinite(v) for v in p.probabilities.values()), p.probabilities
        assert p.covid_probability is None or math.isfinite(p.covid_probability), p.covid_probability
        assert p.pneumonia_probability is None or math.isfinite(p.pneumonia_probability), p.pneumonia_probability
        assert verdict.headline(p).title and isinstance(verdict.site_call_sentence(p, classifier.site), str)
        site = classifier.site
        assert verdict.validation_statement(site, p).startswith(f"Validated at {site.name}")
        assert site.confirmed == (verdict.site_doubt_sentence(site, "the site's") == "")
        assert isinstance(verdict.verdict_caveat(p, site), str)
        assert all(isinstance(line, str) and line for line in verdict.verdict_limits(
            p, classifier.metadata, verdict.operating_threshold(classifier), site))
        assert prediction_row("film.png", p)["file"] == "film.png"
        report = case_report_html(name="film.png", image=film.pixels, prediction=p, classifier=classifier,
                                  model_label="m")
        assert site.name in report
        shown = explain(classifier, film, target_class=p.call)  # a head that decides the call is what it explains
        assert np.isfinite(shown.heatmap).all() and shown.target_class == p.call
        assert shown.faithfulness is None or math.isfinite(shown.faithfulness), shown.faithfulness

    counts, failures = _outcomes(edits, verdict_at_site)
    print(f"\nfuzz: {len(edits)} edited site files: {counts}, {len(failures)} failures")
    assert not failures, "\n".join(failures[:20])
    assert counts["read"] > len(edits) // 20 and counts["refused"] > len(edits) // 20


@pytest.mark.parametrize("kind", ["3class", "pneumonia"])
def test_sites_of_random_patient_layouts_are_validated_or_refused_with_a_reason(tmp_path, kind):
    """A site's films come in any share of classes and patients: a few COVID-19 patients with many films each, one
    PatientID (or one folder name) for every film, classes missing. Two such layouts stopped validate-site with
    scikit-learn's ValueError. Seeded random layouts of patient folders inside class folders (some named alike in
    every class) must each give a report, its steps skipped with a reason where the patients are too few, or a
    CovidCoreError; a report's figures must be finite or None. $COVID_FUZZ_INPUTS / 200 layouts per kind."""
    import math

    from app_helpers import make_checkpoint, make_pneumonia_checkpoint, png_bytes, site_film
    from covid_core.checkpoint import load_classifier
    from covid_core.errors import CovidCoreError
    from covid_core.site import validate_site

    classifier = load_classifier((make_checkpoint if kind == "3class" else make_pneumonia_checkpoint)(
        tmp_path / "model.pt"))
    rng = random.Random(SEED)
    outcomes = {"report": 0, "refused": 0, "skipped for patients": 0}
    failures = []
    for n in range(max(4, N_INPUTS // 200)):
        root = tmp_path / f"site{n}"
        shared = rng.random() < 0.3  # the same folder names inside every class folder (one PatientID-like key)
        for k, cls in enumerate(("normal", "pneumonia", "covid19")):
            for p in range(rng.choice([0, 1, 1, 2, 3, 5])):
                folder = root / cls / (f"series{p}" if shared else f"{cls}-patient{p}")
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(rng.choice([1, 3, 6, 12])):
                    (folder / f"{i}.png").write_bytes(png_bytes(site_film(cls, 10 * p + i, k)))
        if not root.exists():
            continue
        try:
            report = validate_site(classifier, root, seed=n)
        except CovidCoreError:
            outcomes["refused"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - what the test exists to catch
            failures.append(f"layout {n}: {type(exc).__name__}: {exc}")
            continue
        outcomes["report"] += 1
        outcomes["skipped for patients"] += any("cross-validating by patient" in s for s in report["skipped"])
        for when in ("before", "after"):
            for key in ("sensitivity", "specificity", "auc"):
                value = (report.get(when, {}).get(key) or {}).get("value")
                if value is not None and not math.isfinite(value):
                    failures.append(f"layout {n}: {when} {key} is {value}")
    print(f"\nfuzz: {sum(outcomes.values()) - outcomes['skipped for patients']} site layouts ({kind}): {outcomes}, "
          f"{len(failures)} failures")
    assert not failures, "\n".join(failures[:20])
    assert outcomes["report"] > 0
