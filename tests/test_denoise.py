"""Denoising: noise models, DAE sizes and checkpoints, DIP stopping, metrics, classical filters, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from covid_core.checkpoint import atomic_save
from covid_core.cli import main as cli_main
from covid_core.denoise import METHODS, NOISE_KINDS, add_noise, denoise, load_dae, psnr, run_dip, ssim
from covid_core.denoise.dae import DAEDenoiser, DAENet, dae_checkpoint
from covid_core.denoise.dip import WindowedVariance
from covid_core.errors import CheckpointError, ConfigError, InvalidImageError


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny convolutions are far slower with several OpenMP threads on a loaded 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def phantom(h: int = 64, w: int = 64) -> np.ndarray:
    """float32 HxW in [0, 1]: a smooth gradient with a bright disc (edges and flat areas)."""
    yy, xx = np.mgrid[:h, :w]
    img = 0.2 + 0.3 * xx / max(w - 1, 1) + 0.4 * (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 4) ** 2)
    return img.astype(np.float32)


def tiny_dae(tmp_path, seed: int = 0):
    torch.manual_seed(seed)
    model = DAENet((8, 12, 16))
    path = tmp_path / "dae.pt"
    atomic_save(dae_checkpoint(model, train_config={"note": "test"}), path)
    return model, path


# ---- noise models ---------------------------------------------------------------------------------------------

def test_gaussian_noise_has_the_requested_sigma_and_is_seeded():
    flat = np.full((200, 200), 0.5, np.float32)
    noisy = add_noise(flat, "gaussian", 25, seed=3)
    assert noisy.dtype == np.float32 and noisy.shape == flat.shape
    assert abs((noisy - flat).std() * 255 - 25) < 1.0
    assert abs((noisy - flat).mean()) < 0.005
    assert np.array_equal(noisy, add_noise(flat, "gaussian", 25, seed=3))
    assert not np.array_equal(noisy, add_noise(flat, "gaussian", 25, seed=4))


def test_poisson_noise_variance_follows_intensity_over_photons():
    for value, photons in ((0.5, 100), (0.2, 30)):
        noisy = add_noise(np.full((200, 200), value, np.float32), "poisson", photons, seed=0)
        assert abs(noisy.mean() - value) < 0.01
        assert noisy.var() == pytest.approx(value / photons, rel=0.08)
    # Lower dose = noisier.
    img = phantom()
    assert psnr(img, add_noise(img, "poisson", 20)) < psnr(img, add_noise(img, "poisson", 500)) - 10


def test_speckle_and_salt_pepper_statistics():
    flat = np.full((200, 200), 0.4, np.float32)
    speckled = add_noise(flat, "speckle", 0.04, seed=1)
    assert speckled.std() == pytest.approx(0.4 * 0.2, rel=0.05)
    sp = add_noise(flat, "salt_pepper", 0.1, seed=1)
    hit = sp != flat
    assert hit.mean() == pytest.approx(0.1, abs=0.01)
    assert set(np.unique(sp[hit])) == {0.0, 1.0}
    assert (sp[hit] == 1).mean() == pytest.approx(0.5, abs=0.05)


def test_every_noise_kind_stays_in_range():
    img = phantom()
    for kind, level in zip(NOISE_KINDS, (50, 10, 0.5, 0.3)):
        out = add_noise(img, kind, level)
        assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kind, level, expected", [("laplace", 10, "choose one of: gaussian, poisson"),
                                                   ("gaussian", -1, "0-255"), ("poisson", 0, "photon count"),
                                                   ("salt_pepper", 1.5, "fraction")])
def test_bad_noise_settings_are_explained(kind, level, expected):
    with pytest.raises(ConfigError, match=expected):
        add_noise(phantom(), kind, level)


# ---- metrics --------------------------------------------------------------------------------------------------

def test_psnr_and_ssim():
    img = phantom()
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = add_noise(img, "gaussian", 25, seed=0)
    # PSNR of sigma 25 noise is about 20.2 dB (a little more: clipping at 0 and 1).
    assert 19.5 < psnr(img, noisy) < 21.5
    assert ssim(img, noisy) < 0.6
    with pytest.raises(InvalidImageError, match="same shape"):
        psnr(img, img[:10])


# ---- DAE ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(37, 53), (100, 64), (1, 1), (7, 200)])
def test_dae_handles_any_size(tmp_path, shape):
    model, _ = tiny_dae(tmp_path)
    out = DAEDenoiser(model).denoise(np.random.default_rng(0).random(shape, dtype=np.float32))
    assert out.shape == shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_dae_tiles_large_images(tmp_path):
    model, _ = tiny_dae(tmp_path)
    img = phantom(150, 90)
    tiled = DAEDenoiser(model, tile=64, overlap=16).denoise(img)
    whole = DAEDenoiser(model).denoise(img)
    assert tiled.shape == img.shape
    # Tiles see a little less context at their borders; away from them the result is nearly the same.
    assert np.abs(tiled - whole).mean() < 0.01


def test_dae_checkpoint_round_trip(tmp_path):
    model, path = tiny_dae(tmp_path)
    loaded = load_dae(path)
    img = add_noise(phantom(40, 56), "gaussian", 25)
    assert np.array_equal(loaded.denoise(img), DAEDenoiser(model).denoise(img))
    assert loaded.metadata["train_config"] == {"note": "test"}
    assert np.array_equal(denoise(img, "dae", model_path=path), loaded.denoise(img))


def test_dae_missing_or_foreign_checkpoint_is_explained(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="does not exist.*train.py --task denoise"):
        load_dae(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a denoising autoencoder"):
        load_dae(tiny_checkpoint)


# ---- DIP ------------------------------------------------------------------------------------------------------

def test_dip_lowers_the_loss_and_reports_progress():
    noisy = add_noise(phantom(32, 32), "gaussian", 25, seed=1)
    seen = []
    result = run_dip(noisy, max_iters=40, time_budget_s=60, channels=8, early_stop=False, preview_every=10,
                     on_progress=lambda it, loss, preview: seen.append((it, loss, preview)))
    assert result.stopped_reason == "max iterations" and result.iterations == 40
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert [it for it, _, p in seen if p is not None] == [10, 20, 30, 40]
    assert all(p.shape == (32, 32) for *_, p in seen if p is not None)
    assert result.image.shape == (32, 32) and result.image.dtype == np.float32


def test_dip_odd_size_comes_back_the_same_shape():
    result = run_dip(phantom(37, 21), max_iters=3, channels=8, early_stop=False)
    assert result.image.shape == (37, 21)


def test_dip_early_stopping_triggers_without_the_clean_image():
    clean = phantom(32, 32)
    noisy = add_noise(clean, "gaussian", 25, seed=1)
    result = run_dip(noisy, max_iters=1000, time_budget_s=120, channels=8, es_window=5, es_patience=20)
    assert result.stopped_reason == "early stop"
    assert result.iterations < 1000 and result.iterations - result.best_iteration == 20
    assert psnr(clean, result.image) > psnr(clean, noisy)


def test_windowed_variance_tracks_the_last_window():
    wv = WindowedVariance(3)
    assert wv.push(np.zeros(4)) is None and wv.push(np.ones(4)) is None
    assert wv.push(np.full(4, 2.0)) == pytest.approx(2 / 3)
    assert wv.push(np.full(4, 2.0)) == pytest.approx(2 / 9)  # window now 1, 2, 2


def test_dip_cancel_and_time_budget():
    noisy = phantom(32, 32)
    cancelled = run_dip(noisy, max_iters=100, channels=8, on_progress=lambda it, loss, p: it < 3)
    assert cancelled.stopped_reason == "cancelled" and cancelled.iterations == 3
    timed = run_dip(noisy, max_iters=100, time_budget_s=0.0, channels=8)
    assert timed.stopped_reason == "time budget" and timed.iterations == 1


@pytest.mark.parametrize("settings, words", [
    ({"max_iters": 0}, "DIP iterations must be a whole number from 1"),
    ({"max_iters": -5}, "DIP iterations must be a whole number from 1"),
    ({"max_iters": 2.5}, "DIP iterations must be a whole number from 1"),
    ({"time_budget_s": -1.0}, "DIP time budget must be from 0"),
    ({"time_budget_s": float("nan")}, "DIP time budget must be from 0"),
])
def test_dip_settings_that_would_return_the_noisy_film_unchanged_are_refused(settings, words):
    # no step at all would hand back the input as if it were denoised
    with pytest.raises(ConfigError, match=words):
        run_dip(phantom(32, 32), channels=8, **settings)


# ---- classical ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["nlm", "gaussian", "median", "bm3d"])
def test_classical_methods_reduce_noise(method):
    clean = phantom(64, 64)
    noisy = add_noise(clean, "gaussian", 25, seed=2)
    out = denoise(noisy, method)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert psnr(clean, out) > psnr(clean, noisy) + 2


def test_a_classical_filters_strength_follows_the_images_own_noise():
    """Given no settings, a filter takes the ones tuned for the noise estimated in the image: a film with little
    noise comes back nearly as it is (fixed settings for moderate noise blurred it), a very noisy one is smoothed
    more than the fixed settings would."""
    from covid_core.denoise.classical import DEFAULTS, FILTERS, estimate_noise_sigma, matched_settings, \
        settings_for_noise

    rng = np.random.default_rng(0)
    film = np.clip(phantom(256, 256) + rng.normal(0, 1 / 255, (256, 256)), 0, 1).astype(np.float32)
    assert estimate_noise_sigma(film) == pytest.approx(1.0, abs=0.5)
    for method, margin in (("nlm", 3), ("gaussian", 3), ("median", 0)):  # a median barely alters this phantom
        matched = denoise(film, method)  # no settings given: matched to the film's noise
        assert psnr(film, matched) > psnr(film, FILTERS[method](film, **DEFAULTS[method])) + margin, method
    noisy = add_noise(phantom(256, 256), "gaussian", 50, seed=1)
    assert estimate_noise_sigma(noisy) == pytest.approx(50, rel=0.2)
    assert matched_settings("nlm", noisy)[0]["h"] > DEFAULTS["nlm"]["h"]
    assert psnr(phantom(256, 256), denoise(noisy, "nlm")) > psnr(phantom(256, 256), denoise(noisy, "nlm", h=20)) + 3
    # the tuned points, linear between them and towards no filtering at sigma 0, and settings in pixels grow with
    # the image, less than in proportion
    assert settings_for_noise("nlm", 25) == {"h": 22.0} and settings_for_noise("nlm", 30) == {"h": 27.5}
    assert settings_for_noise("nlm", 2.5) == {"h": 2.5} and settings_for_noise("nlm", 0) == {"h": 1.0}
    assert settings_for_noise("nlm", 60) == {"h": 61.33}  # beyond 50: along the last segment
    assert settings_for_noise("gaussian", 25, side=512)["sigma"] == pytest.approx(2.0 * 2 ** 0.4, abs=0.01)
    assert all(settings_for_noise("median", s, side=side)["ksize"] % 2 == 1
               for s in (0, 3, 12, 40, 90) for side in (64, 256, 2048))


def test_unknown_method_and_parameter_are_explained():
    with pytest.raises(ConfigError, match="choose one of: dae, dip, nlm"):
        denoise(phantom(), "wiener")
    with pytest.raises(ConfigError, match="valid: ksize"):
        denoise(phantom(), "median", radius=3)
    with pytest.raises(InvalidImageError, match="2-D"):
        denoise(np.zeros((4, 4, 3)), "median")
    assert set(METHODS) == {"dae", "dip", "nlm", "gaussian", "median", "bm3d"}


# ---- CLI ------------------------------------------------------------------------------------------------------

def write_png(path, img):
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return path


def test_cli_denoises_png_and_dicom(tmp_path, capsys):
    from synthetic_files import dicom_gradient

    src = write_png(tmp_path / "in.png", add_noise(phantom(48, 40), "gaussian", 25))
    assert cli_main(["denoise", "--method", "median", str(src), str(tmp_path / "out.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (48, 40)
    _, path = tiny_dae(tmp_path)
    (tmp_path / "in.dcm").write_bytes(dicom_gradient(40))
    assert cli_main(["denoise", "--method", "dae", "--model", str(path), str(tmp_path / "in.dcm"),
                     str(tmp_path / "dcm.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "dcm.png")).shape == (40, 40)


@pytest.mark.parametrize("case, expected", [("missing", "does not exist"), ("text", "error: "),
                                            ("bad_out", "must end in .png"), ("no_model", "does not exist")])
def test_cli_bad_inputs_give_one_line_errors(tmp_path, capsys, case, expected):
    src = write_png(tmp_path / "in.png", phantom(32, 32))
    (tmp_path / "notes.png").write_text("this is not an image")
    argv = {"missing": ["--method", "nlm", str(tmp_path / "gone.png"), str(tmp_path / "o.png")],
            "text": ["--method", "nlm", str(tmp_path / "notes.png"), str(tmp_path / "o.png")],
            "bad_out": ["--method", "nlm", str(src), str(tmp_path / "o.jpg")],
            "no_model": ["--method", "dae", "--model", str(tmp_path / "none.pt"), str(src), str(tmp_path / "o.png")]}
    assert cli_main(["denoise", *argv[case]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err
    assert not (tmp_path / "o.png").exists()


def test_cli_unknown_method_lists_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["denoise", "--method", "wiener", "a.png", "b.png"])
    assert exc.value.code == 2
    assert "invalid choice: 'wiener'" in capsys.readouterr().err


def test_a_dip_run_whose_page_is_gone_cancels_itself_and_a_short_break_does_not(monkeypatch):
    """A closed or reloaded page leaves its DIP thread behind; it must not keep the CPU for up to its budget."""
    import time
    from types import SimpleNamespace

    import covid_core.denoise as dn
    from covid_core.denoise import dip_job

    def endless_dip(image, *, on_progress, **settings):
        for it in range(1, 100_000):
            if on_progress(it, 0.1, None) is False:
                return SimpleNamespace(iterations=it, stopped_reason="cancelled")
            time.sleep(0.01)

    monkeypatch.setattr(dn, "run_dip", endless_dip)
    monkeypatch.setattr(dip_job, "ABANDONED_AFTER_S", 0.5)
    page = {"open": True}
    job = dip_job.DipJob(np.zeros((8, 8), np.float32), 100_000, 600, None, "x.png", watched=lambda: page["open"])
    job.thread.start()
    try:
        time.sleep(0.3)
        page["open"] = False  # a break shorter than ABANDONED_AFTER_S: the run goes on
        time.sleep(0.2)
        page["open"] = True
        time.sleep(0.6)
        assert job.running and not job.cancelled
        page["open"] = False
        gone = time.monotonic()
        job.thread.join(10)
        assert not job.running and time.monotonic() - gone >= 0.5
        assert job.cancelled and job.cancel_reason == "the page that started it was closed"
    finally:
        job.cancel()


def test_the_bm3d_settings_are_the_ones_the_benchmark_recorded():
    """BM3D's points in TUNED_FOR_SIGMA are quoted from the benchmark's record in the shipped denoiser."""
    from covid_core.checkpoint import load_checkpoint_dict
    from covid_core.denoise.classical import TUNED_FOR_SIGMA

    path = Path(__file__).resolve().parents[1] / "weights" / "dae.pt"
    if not path.is_file():
        pytest.skip("weights/dae.pt is not shipped in this checkout")
    tuned = load_checkpoint_dict(path)["test_benchmark"]["tuned"]
    name, points = TUNED_FOR_SIGMA["bm3d"]
    assert [(sigma, value) for sigma, value in points] == [
        (sigma, tuned[f"bm3d @ gaussian {sigma}"][name]) for sigma, _ in points]
