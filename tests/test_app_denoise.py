"""AppTest of the Denoise page's Deep Image Prior panel and image grid (tiny synthetic X-rays, tiny DIP runs).

DIP runs in a background thread; a test waits for it by re-running the page, as the page's own polling does.
Runs are kept to 64 px images and a few iterations (the test machine has 2 CPU cores).
"""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

import covid_core.denoise as dn
from app_helpers import APP, png_bytes, xray_array

TIMEOUT = 60
IMAGE_A = ("a.png", png_bytes(xray_array(64, 3)), "image/png")
IMAGE_B = ("b.png", png_bytes(xray_array(64, 7)), "image/png")
UNREADABLE = ("bad.png", b"%PDF-1.4 not an image", "image/png")
REAL_RUN_DIP = dn.run_dip


def dip_with(monkeypatch, **overrides) -> None:
    """Make the page's DIP a real run_dip with some settings overridden (the page looks it up at call time)."""
    monkeypatch.setattr(dn, "run_dip", lambda image, **kw: REAL_RUN_DIP(image, **{**kw, **overrides}))


def denoise_page(upload=IMAGE_A) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("views/denoise.py").run()
    at.file_uploader(key="dn_upload").set_value(upload).run()
    at.selectbox(key="dn_kind").select("gaussian").run()  # the measured demonstration, not the default
    # No fast method, so the only warnings on the page are DIP's (the tmp weights folder has no dae.pt).
    at.multiselect(key="dn_methods").set_value([]).run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, file) -> AppTest:
    at.file_uploader(key="dn_upload").set_value(file).run()
    assert not at.exception, at.exception
    return at


def messages(at: AppTest) -> list[str]:
    return [m.value for kind in (at.success, at.warning, at.info, at.error) for m in kind]


def dip_messages(at: AppTest) -> list[str]:
    """The outcome of the DIP run on the page: finished (on its own), stopped (cancelled) or failed."""
    return [m for m in messages(at) if m.startswith(("DIP finished", "DIP stopped", "DIP failed"))]


def image_captions(at: AppTest) -> list[str]:
    return [c for img in at.get("image") for c in img.captions]


def run_dip_and_wait(at: AppTest, seconds: float = 90) -> AppTest:
    at.button(key="dn_dip_start").click().run()
    assert not at.exception, at.exception
    return wait_for_outcome(at, seconds)


def wait_for_outcome(at: AppTest, seconds: float = 90) -> AppTest:
    deadline = time.monotonic() + seconds
    while not dip_messages(at):
        assert time.monotonic() < deadline, f"DIP did not finish in {seconds} s: {messages(at)}"
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    return at


def test_dip_result_belongs_to_the_image_and_noise_it_was_computed_from(env):
    at = denoise_page(IMAGE_A)
    at.slider(key="dn_dip_iters").set_value(100).run()
    run_dip_and_wait(at)
    [outcome_a] = dip_messages(at)
    assert "Deep Image Prior" in image_captions(at)
    assert any("a.png" in c.value for c in at.caption)  # the panel says which input the result is for

    upload(at, IMAGE_B)
    assert not dip_messages(at), dip_messages(at)  # A's outcome is not reported under B
    assert "Deep Image Prior" not in image_captions(at)  # nor is A's image shown
    assert len([c.value for c in at.caption if "PSNR" in c.value]) == 1  # only B's noisy input is scored
    assert any("another input" in i.value and "a.png" in i.value for i in at.info)
    assert any(c.value == "Not started." for c in at.caption)

    upload(at, IMAGE_A)  # back to A: its own result again
    assert dip_messages(at) == [outcome_a]
    assert "Deep Image Prior" in image_captions(at)

    at.number_input(key="dn_seed").set_value(1).run()  # same file, other noise: other input pixels
    assert not at.exception, at.exception
    assert not dip_messages(at) and "Deep Image Prior" not in image_captions(at)
    assert any("another input" in i.value for i in at.info)


def test_running_dip_is_stopped_and_hidden_when_the_input_changes(env, monkeypatch):
    dip_with(monkeypatch, early_stop=False, time_budget_s=120.0, max_iters=100_000)  # runs until cancelled
    at = denoise_page(IMAGE_A)
    at.button(key="dn_dip_start").click().run()
    assert not at.exception, at.exception
    assert at.get("progress") and any("iteration" in p.proto.text for p in at.get("progress"))

    upload(at, IMAGE_B)
    assert not at.get("progress")  # A's progress is not shown as B's
    assert not any(b.label == "Cancel DIP" for b in at.button)
    assert any("another input" in i.value and "a.png" in i.value and "cancelled" in i.value for i in at.info)

    upload(at, IMAGE_A)  # A's run was stopped, not left running in the background
    wait_for_outcome(at, 60)
    [outcome] = dip_messages(at)
    assert outcome.startswith("DIP stopped:") and "cancelled" in outcome and "input changed" in outcome
    assert not at.success


def test_cancelled_dip_is_reported_as_stopped_not_finished(env, monkeypatch):
    dip_with(monkeypatch, early_stop=False, time_budget_s=120.0, max_iters=100_000)  # runs until cancelled
    at = denoise_page(IMAGE_A)
    at.button(key="dn_dip_start").click().run()
    assert not at.exception, at.exception
    at.button(key="dn_dip_cancel").click().run()
    assert not at.exception, at.exception
    wait_for_outcome(at, 60)
    [outcome] = dip_messages(at)
    assert outcome.startswith("DIP stopped:") and "(cancelled)" in outcome and "unfinished" in outcome
    assert not any("DIP finished" in m for m in messages(at)), messages(at)  # a cancelled run did not finish
    assert not at.success


def shown_settings(at: AppTest) -> dict:
    """The Denoise settings as the page shows them; KeyError when one is not on the page."""
    return {"size": at.select_slider(key="dn_size").value, "kind": at.selectbox(key="dn_kind").value,
            "level": at.slider(key="dn_level").value, "seed": at.number_input(key="dn_seed").value,
            "methods": list(at.multiselect(key="dn_methods").value),
            "iterations": at.slider(key="dn_dip_iters").value, "budget": at.slider(key="dn_dip_budget").value}


@pytest.mark.parametrize("in_between", [None, UNREADABLE], ids=["empty uploader", "unreadable file"])
def test_settings_are_kept_when_the_file_is_replaced(env, monkeypatch, in_between):
    """Replacing the file keeps every setting, and the next DIP run uses them.

    A browser replacing the file first sends a run with an empty uploader (or the user picks a file that cannot
    be read first). A widget missing from that run is dropped by the browser, which draws it again at its
    default and sends that default back: the user's 10 s budget silently became 90 s. So every setting must
    still be on the page, with its value, in that run.
    """
    dip_with(monkeypatch, max_iters=1)  # the run only has to start: the page reports the settings it was given
    at = denoise_page(IMAGE_A)
    at.select_slider(key="dn_size").set_value(128).run()
    at.selectbox(key="dn_kind").select("speckle").run()
    at.slider(key="dn_level").set_value(0.1).run()
    at.number_input(key="dn_seed").set_value(5).run()
    at.multiselect(key="dn_methods").set_value(["median"]).run()
    at.slider(key="dn_dip_iters").set_value(100).run()
    at.slider(key="dn_dip_budget").set_value(10).run()
    assert not at.exception, at.exception
    chosen = {"size": 128, "kind": "speckle", "level": 0.1, "seed": 5, "methods": ["median"],
              "iterations": 100, "budget": 10}
    assert shown_settings(at) == chosen

    upload(at, in_between)
    assert shown_settings(at) == chosen  # still on the page while there is no readable image

    upload(at, IMAGE_B)
    assert shown_settings(at) == chosen
    assert "Noisy (speckle, 0.1)" in image_captions(at) and "Median filter" in image_captions(at)
    run_dip_and_wait(at)
    assert any(c.value == "Input: b.png, 128 px, speckle noise 0.1, seed 5, at most 100 iterations, 10 s budget."
               for c in at.caption), [c.value for c in at.caption]


def test_dip_stopped_by_its_time_budget_warns_and_flags_output_worse_than_noisy(env, monkeypatch):
    dip_with(monkeypatch, time_budget_s=0.0)  # stops after its first iteration: an unfinished estimate
    at = denoise_page(IMAGE_A)
    run_dip_and_wait(at)
    assert not at.success, [s.value for s in at.success]
    budget = [w.value for w in at.warning if "time budget" in w.value and "DIP finished" in w.value]
    assert budget and "early-stopping rule" in budget[0] and "larger time budget" in budget[0]
    # The synthetic-noise mode has a clean reference: one iteration of DIP is far below the noisy input's PSNR.
    assert any("worse than the noisy input" in w.value for w in at.warning)


def test_dip_that_reaches_the_iteration_cap_warns(env):
    at = denoise_page(IMAGE_A)
    at.selectbox(key="dn_kind").select("none").run()  # no reference: judged by its stopping reason alone
    at.slider(key="dn_dip_iters").set_value(100).run()  # fewer than the early-stopping rule needs (window + patience)
    run_dip_and_wait(at)
    assert not at.success
    assert any("max iterations" in w.value and "more iterations" in w.value for w in at.warning)


def test_dip_whose_early_stopping_rule_fired_is_a_success(env, monkeypatch):
    dip_with(monkeypatch, es_window=5, es_patience=5)  # the rule fires after a few dozen steps
    at = denoise_page(IMAGE_A)
    at.selectbox(key="dn_kind").select("none").run()
    run_dip_and_wait(at)
    assert [s.value for s in at.success if "early stop" in s.value and "early-stopping rule fired" in s.value]
    assert not at.warning, [w.value for w in at.warning]
    assert "Deep Image Prior" in image_captions(at)


def test_image_grid_gives_every_image_its_own_equal_column(env):
    at = denoise_page(IMAGE_A)
    at.multiselect(key="dn_methods").set_value(["median", "gaussian", "nlm"]).run()
    assert not at.exception, at.exception
    holding = [col for col in at.columns if col.get("image")]
    assert sum(len(col.get("image")) for col in holding) == 5  # clean, noisy and three methods: two rows
    assert all(len(col.get("image")) == 1 for col in holding)  # a second row never sits under the first's captions
    assert len({col.weight for col in holding}) == 1  # every image the same width


def test_the_page_says_the_noise_it_estimated_and_each_classical_filters_settings_for_it(env):
    at = denoise_page(IMAGE_A)  # Gaussian noise of sigma 15 added
    at.multiselect(key="dn_methods").set_value(["median", "nlm"]).run()
    assert not at.exception, at.exception
    [said] = [c.value for c in at.caption if c.value.startswith("Noise estimated in the noisy copy: sigma ")]
    sigma = float(said.split("sigma ")[1].split(" ")[0])
    assert 10 < sigma < 30 and "strength follows it" in said  # 15 added to a synthetic film with its own
    from covid_core.denoise.classical import settings_for_noise

    [h] = [float(c.value.split(" · settings: h ")[1]) for c in at.caption
           if c.value.startswith("PSNR ") and " · settings: h " in c.value]
    assert h == pytest.approx(settings_for_noise("nlm", sigma)["h"], abs=0.2)  # sigma as shown, to one decimal
    assert any(c.value.startswith("PSNR ") and " · settings: ksize " in c.value for c in at.caption)
    at.selectbox(key="dn_kind").select("none").run()  # the film as it is: its own noise, far lower
    [said] = [c.value for c in at.caption if c.value.startswith("Noise estimated in the input: sigma ")]
    assert float(said.split("sigma ")[1].split(" ")[0]) < sigma
