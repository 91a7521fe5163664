"""Patch-based training (``augment.random_window``, ``--patch-crop``): a random window of each film, at its scale."""

import pytest
import torch

from covid_core.augment import random_window


def test_each_film_becomes_its_own_window_at_its_own_scale():
    torch.manual_seed(0)
    x = torch.arange(4 * 20 * 20, dtype=torch.float32).view(4, 1, 20, 20)  # every pixel value says where it was
    places = set()
    for _ in range(30):
        out = random_window(x, 0.5)
        assert out.shape == (4, 1, 10, 10)
        for i in range(4):
            top, left = divmod(int(out[i, 0, 0, 0]) - i * 400, 20)
            assert 0 <= top <= 10 and 0 <= left <= 10
            assert torch.equal(out[i], x[i, :, top:top + 10, left:left + 10])  # a window, pixels unchanged
            places.add((top, left))
    assert len(places) > 20  # drawn anew per film and per batch


def test_share_zero_changes_nothing_and_a_tiny_share_keeps_eight_pixels():
    x = torch.rand(3, 1, 16, 16)
    assert random_window(x, 0.0) is x
    assert random_window(x, 0.25).shape == (3, 1, 8, 8)


@pytest.mark.parametrize("value", [0.1, 1.0, -0.5])
def test_an_absurd_patch_share_is_refused(value):
    from covid_core.errors import ConfigError
    from covid_core.training import TrainConfig

    with pytest.raises(ConfigError, match="patch crop must be 0 \\(off\\) or a share of the side from 0.25"):
        TrainConfig(data="x", patch_crop=value).validate()


def test_a_run_trains_on_windows_and_reads_whole_films(folder_dataset, tmp_path, monkeypatch):
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import predict
    from covid_core.training import TrainConfig, loop, run

    windows = []

    def recording(x, share):
        out = random_window(x, share)
        windows.append((share, tuple(x.shape[-2:]), tuple(out.shape[-2:])))
        return out

    monkeypatch.setattr(loop, "random_window", recording)
    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=4, image_size=32,
                         val_fraction=0.2, patch_crop=0.5, runs_dir=str(tmp_path / "runs"))
    model = run(config, progress=False)
    assert windows and set(windows) == {(0.5, (32, 32), (16, 16))}  # every training batch, as windows
    clf = load_classifier(model)
    assert clf.preprocess.image_size == 32  # the model reads the whole film at inference
    assert predict(clf, torch.rand(48, 40).numpy()).pixels_u8.shape == (32, 32)
