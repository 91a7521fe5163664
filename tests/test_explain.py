"""Explanations: heatmaps for every registered model, trust checks, overlay, batch API and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CLASSES_3, make_folder_dataset
from covid_core.checkpoint import Classifier
from covid_core.errors import ConfigError
from covid_core.explain import (CAM_METHODS, class_mean_heatmaps, estimate_thorax, explain, explain_batch,
                                mean_heatmaps_and_thorax_share, overlay)
from covid_core.models import BaselineCNN, build_model, get_spec, list_models
from covid_core.preprocess import PreprocessConfig


def _classifier(name="cnn", classes=CLASSES_3, size=64, model=None, seed=0) -> Classifier:
    torch.manual_seed(seed)
    model = model if model is not None else build_model(name, len(classes))
    return Classifier(model=model.eval(), spec=get_spec(name), classes=tuple(classes), target="3class",
                      preprocess=PreprocessConfig(image_size=size))


def _image(h=90, w=70, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w)).astype(np.float32)


@pytest.mark.parametrize("method", ["gradcam", "eigencam"])
@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_a_heatmap_of_the_original_size(name, method):
    clf = _classifier(name)
    e = explain(clf, _image(90, 70), method)
    assert e.heatmap.shape == (90, 70) and e.heatmap.dtype == np.float32
    assert not np.isnan(e.heatmap).any()
    assert e.heatmap.min() >= 0.0 and e.heatmap.max() <= 1.0
    assert e.heatmap_model.shape == (64, 64)
    assert e.thorax_mask.shape == (90, 70) and e.thorax_mask.dtype == bool
    assert 0.0 <= e.thorax_share <= 1.0 and 0.0 <= e.border_share <= 1.0
    assert e.target_class == e.predicted_class  # default: the predicted class
    assert e.faithfulness is not None and np.isfinite(e.faithfulness)
    # The heatmap trick freezes parameters only while it runs: training must still work afterwards.
    assert all(p.requires_grad for p in clf.model.parameters())


@pytest.mark.parametrize("method", CAM_METHODS)
def test_every_method_runs_on_a_small_cnn(method):
    clf = _classifier(model=BaselineCNN(3, widths=(4, 8, 8, 8)))
    e = explain(clf, _image(50, 80), method, target_class="covid19")
    assert e.heatmap.shape == (50, 80) and e.method == method and e.target_class == "covid19"
    assert not np.isnan(e.heatmap).any() and 0.0 <= e.heatmap.min() <= e.heatmap.max() <= 1.0


def test_a_constant_zero_map_gives_zeros_not_nan_and_says_so():
    model = BaselineCNN(3, widths=(4, 8, 8, 8))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    e = explain(_classifier(model=model), _image(), "gradcam")
    assert not np.isnan(e.heatmap).any() and e.heatmap.max() == 0.0
    assert e.thorax_share == 0.0 and e.border_share == 0.0
    assert e.shortcut_warning and "empty" in e.shortcut_warning


def test_switching_the_target_class_changes_the_map():
    clf = _classifier()
    img = _image(64, 64, seed=3)
    maps = {c: explain(clf, img, "gradcam", target_class=c) for c in CLASSES_3}
    assert [m.target_class for m in maps.values()] == list(CLASSES_3)
    assert np.abs(maps["normal"].heatmap - maps["covid19"].heatmap).max() > 0.1
    assert np.abs(maps["normal"].heatmap - maps["pneumonia"].heatmap).max() > 0.1
    # Names are matched forgivingly, as a clinician would type them.
    assert explain(clf, img, "gradcam", target_class="COVID-19").target_class == "covid19"


def test_unknown_method_and_class_are_refused_with_the_choices():
    clf = _classifier()
    with pytest.raises(ConfigError, match="gradcam\\+\\+.*scorecam"):
        explain(clf, _image(), "gradcam+++")
    with pytest.raises(ConfigError, match="normal, pneumonia, covid19"):
        explain(clf, _image(), "gradcam", target_class="tuberculosis")


def test_batch_matches_single_images_and_keeps_each_original_size():
    clf = _classifier()
    images = [_image(90, 70, 1), _image(64, 128, 2), _image(40, 40, 3)]
    batch = explain_batch(clf, images, "gradcam")
    assert [e.heatmap.shape for e in batch] == [(90, 70), (64, 128), (40, 40)]
    single = explain(clf, images[1], "gradcam")
    np.testing.assert_allclose(batch[1].heatmap, single.heatmap, atol=1e-4)
    assert batch[1].target_class == single.target_class


def test_crop_preprocessing_maps_back_to_the_original_too():
    clf = _classifier()
    clf.preprocess = PreprocessConfig(image_size=64, fit="crop")
    e = explain(clf, _image(90, 70), "gradcam")
    assert e.heatmap.shape == (90, 70) and e.thorax_mask.shape == (90, 70)
    # The cropped-away rows were never seen by the model: no heat there.
    assert e.heatmap[:5].max() == 0.0 and e.heatmap[-5:].max() == 0.0


# --- shortcut warning on models trained for a few seconds -------------------------------------

SIZE = 64


def _marker_images(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 n x SIZE x SIZE noise images; label 1 = planted evidence.

    corner: a bright square in the top-left corner (the shortcut); label-0 images get the same
    square somewhere in the middle, so the model must learn *where* it is.
    blob: a bright Gaussian blob in the centre (evidence where the thorax would be).
    """
    rng = np.random.default_rng(seed)
    images = rng.normal(0.45, 0.08, (n, SIZE, SIZE)).astype(np.float32)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[:SIZE, :SIZE]
    blob = 0.5 * np.exp(-((yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2) / (2 * 5.0 ** 2))
    for i in range(n):
        if kind == "corner":
            y0, x0 = (2, 2) if labels[i] else rng.integers(18, SIZE - 24, 2)
            images[i, y0:y0 + 8, x0:x0 + 8] = 1.0
        elif labels[i]:
            images[i] += blob
    return np.clip(images, 0.0, 1.0), labels


def _train_marker_model(kind: str) -> Classifier:
    from covid_core.preprocess import prepare_pixels, to_model_input

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is faster than two fighting over a busy machine
    try:
        torch.manual_seed(0)
        cfg = PreprocessConfig(image_size=SIZE)
        images, labels = _marker_images(kind, 32, seed=1)
        x = to_model_input(np.stack([prepare_pixels(im, cfg)[0] for im in images]), cfg)
        y = torch.as_tensor(labels)
        model = BaselineCNN(2, widths=(8, 16, 32, 32))
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        for step in range(80):
            model.train()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            if step % 10 == 9:
                model.eval()
                with torch.no_grad():
                    if (model(x).argmax(1) == y).all():
                        break
        model.eval()
        with torch.no_grad():
            assert (model(x).argmax(1) == y).float().mean() >= 0.95, "the marker model did not learn its task"
    finally:
        torch.set_num_threads(threads)
    return Classifier(model=model, spec=get_spec("cnn"), classes=("absent", "present"), target="marker",
                      preprocess=cfg)


@pytest.mark.parametrize("kind, warned", [("corner", True), ("blob", False)])
def test_shortcut_warning_for_a_corner_marker_but_not_a_centred_blob(kind, warned):
    clf = _train_marker_model(kind)
    images, labels = _marker_images(kind, 8, seed=2)
    results = explain_batch(clf, list(images[labels == 1][:3]), "gradcam", target_class="present")
    assert all(e.predicted_class == "present" for e in results)
    assert all((e.shortcut_warning is not None) == warned for e in results), \
        [(e.thorax_share, e.border_share) for e in results]
    if warned:
        assert all(e.thorax_share < 0.5 and "shortcut" in e.shortcut_warning.lower() for e in results)


# --- thorax estimate, overlay --------------------------------------------------------------------

def _phantom(h=120, w=100) -> np.ndarray:
    """float32 chest-like image: dark air, a bright body, two dark lung fields."""
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w), 0.05, np.float32)
    img[((yy - h * 0.55) / (h * 0.45)) ** 2 + ((xx - w / 2) / (w * 0.45)) ** 2 <= 1] = 0.75
    for cx in (0.32, 0.68):
        img[((yy - h * 0.5) / (h * 0.25)) ** 2 + ((xx - w * cx) / (w * 0.12)) ** 2 <= 1] = 0.2
    return img


def test_thorax_estimate_finds_the_lungs_on_a_phantom_and_falls_back_on_noise():
    mask, how = estimate_thorax(_phantom())
    assert how == "lung fields"
    assert mask[60, 32] and mask[60, 68] and mask[60, 50]  # both lungs and the mediastinum
    assert not mask[2, 2] and not mask[117, 97]
    mask, how = estimate_thorax((_image(64, 64) * 255).astype(np.uint8))
    assert how == "central ellipse" and mask[32, 32] and not mask[0, 0]


def test_overlay_is_rgb_uint8_of_the_image_size_and_checks_its_options():
    img, heat = _image(30, 40), np.zeros((30, 40), np.float32)
    heat[:10, :10] = 1.0
    out = overlay(img, heat, opacity=0.5, colormap="jet")
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    grey = overlay(img, heat, opacity=0.0)
    assert (grey[..., 0] == grey[..., 2]).all()  # no colour at zero opacity
    assert not np.array_equal(out[:10, :10], grey[:10, :10])
    assert overlay(img, heat[:15, :20]).shape == (30, 40, 3)  # a smaller map is resized
    with pytest.raises(ConfigError, match="jet"):
        overlay(img, heat, colormap="rainbowz")
    with pytest.raises(ConfigError, match="opacity"):
        overlay(img, heat, opacity=1.5)


def test_class_mean_heatmaps_over_the_test_split(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class_train=1, per_class_test=3, size=48)
    clf = _classifier()
    maps, shares, images, films = mean_heatmaps_and_thorax_share(clf, data, split="test", limit=2)
    assert set(maps) == set(CLASSES_3) == set(shares) == set(images) == set(films)
    assert all(len(f) == 2 for f in films.values())
    for m in (*maps.values(), *images.values()):
        assert m.shape == (64, 64) and m.dtype == np.float32 and 0.0 <= m.min() <= m.max() <= 1.0
    # the underlay is the class's mean film: each class's bright disc sits in its own place
    assert len({np.unravel_index(np.argmax(img), img.shape) for img in images.values()}) == 3
    assert all(0.0 <= s <= 1.0 for s in shares.values())
    assert set(class_mean_heatmaps(clf, data, limit=1)) == set(CLASSES_3)
    with pytest.raises(Exception, match="split"):
        class_mean_heatmaps(clf, data, split="validation")


# --- CLI -------------------------------------------------------------------------------------------

def _run(argv, capsys):
    from covid_core.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_an_overlay_with_the_original_size(tiny_checkpoint, tmp_path, capsys):
    src = tmp_path / "xray.png"
    Image.fromarray((_phantom(90, 70) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out" / "overlay.png"
    code, stdout, _ = _run(["explain", "--model", str(tiny_checkpoint), str(src), "--out", str(out),
                            "--target-class", "covid19"], capsys)
    assert code == 0
    assert Image.open(out).size == (70, 90) and Image.open(out).mode == "RGB"
    assert "prediction:" in stdout and "faithfulness:" in stdout and "in-thorax share:" in stdout
    assert "explained class: covid19" in stdout
    # no site file (and no familiarity score in this checkpoint): the verdict is withheld with the reason, unless a
    # researcher asks for it
    assert "No verdict: this model is not validated at your hospital" in stdout and "why no verdict:" in stdout
    code, stdout, _ = _run(["explain", "--model", str(tiny_checkpoint), str(src), "--out", str(out),
                            "--unvalidated"], capsys)
    assert code == 0 and ("COVID-19: positive" in stdout or "COVID-19: negative" in stdout)
    assert "No verdict" not in stdout and "validation: Not validated at your hospital" in stdout
    assert stdout.splitlines()[0].endswith(" - Unconfirmed: this model has not been validated at your hospital.")
    # validated at a site: what the verdict was worth there, and where it was validated, as Diagnose says them
    import json

    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    site = tmp_path / "site.json"
    given = {"sensitivity": {"value": 0.92, "low": 0.81, "high": 0.97},
             "specificity": {"value": 0.85, "low": 0.78, "high": 0.9}, "films": 190, "withheld": 16,
             "counts": {"tp": 46, "fp": 19, "fn": 4, "tn": 105}}
    site.write_text(json.dumps({"format": SITE_FORMAT, "site": "St Elsewhere", "after": {"given": given},
                                "checkpoint": {"sha256": file_sha256(tiny_checkpoint)}}))
    code, stdout, _ = _run(["explain", "--model", str(tiny_checkpoint), str(src), "--out", str(out),
                            "--site", str(site)], capsys)
    worth = "(PPV, 46 of 65)" if "COVID-19: positive" in stdout else "(NPV, 105 of 109)"
    assert code == 0 and "what the verdict is worth: At St Elsewhere, " in stdout and worth in stdout
    assert "validation: Validated at St Elsewhere: on the 174 of its 190 labelled films" in stdout
    assert "Unconfirmed" not in stdout.splitlines()[0]  # its films confirm it there


@pytest.mark.parametrize("extra, message", [
    (["--method", "gradcam+++"], "scorecam"),
    (["--target-class", "tuberculosis"], "covid19"),
    (["--image-missing"], "cannot read"),
])
def test_cli_bad_inputs_give_one_line_errors(tiny_checkpoint, tmp_path, capsys, extra, message):
    src = tmp_path / "xray.png"
    Image.fromarray((_image(40, 40) * 255).astype(np.uint8)).save(src)
    image = str(tmp_path / "missing.png") if extra == ["--image-missing"] else str(src)
    extra = [] if extra == ["--image-missing"] else extra
    code, _, err = _run(["explain", "--model", str(tiny_checkpoint), image, "--out", str(tmp_path / "o.png"),
                         *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "o.png").exists()


def test_cli_offers_the_package_methods_and_defaults_to_the_heatmap_the_app_shows():
    from covid_core.cli import build_parser
    from covid_core.explain import DEFAULT_METHOD

    parser = build_parser()
    args = parser.parse_args(["explain", "--model", "m.pt", "x.png", "--out", "o.png"])
    assert args.method == DEFAULT_METHOD == CAM_METHODS[0] == "hirescam"
    explain_parser = parser._subparsers._group_actions[0].choices["explain"]
    assert ", ".join(CAM_METHODS) in " ".join(explain_parser.format_help().split())


def test_faithfulness_warning_only_when_removing_the_evidence_does_not_lower_the_probability():
    from covid_core.explain.trust import faithfulness_warning

    assert faithfulness_warning(0.08) is None and faithfulness_warning(None) is None
    assert "+0.0 percentage points" in faithfulness_warning(0.0)
    assert "+2.5 percentage points" in faithfulness_warning(-0.025)  # the probability rose


def test_class_means_draw_a_seeded_sample_not_the_first_files_by_name(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class_train=1, per_class_test=12, size=32)
    clf = _classifier()
    first = mean_heatmaps_and_thorax_share(clf, data, split="test", limit=4).films
    again = mean_heatmaps_and_thorax_share(clf, data, split="test", limit=4).films
    assert first == again  # the same films on every run
    for cls, used in first.items():
        every = sorted(str(p) for p in (data / "test" / cls).iterdir())
        assert len(used) == 4 and set(used) <= set(every) and used != every[:4]
