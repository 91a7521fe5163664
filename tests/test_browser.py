"""End to end in a real headless browser: upload a real X-ray on Diagnose, see the verdict and heatmap.

Debian's chromium (/usr/bin/chromium) driven by Playwright's Python package; the screenshot goes to
test-artifacts/diagnose.png (git-ignored). Skips with a reason when chromium or the data is absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app_helpers import REPO, make_checkpoint

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_server(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    shipped = REPO / "weights" / "resnet18.pt"
    if shipped.is_file():
        shutil.copyfile(shipped, weights / shipped.name)
    else:
        make_checkpoint(weights / "tiny_cnn.pt")
    port = _free_port()
    env = dict(os.environ, COVID_XRAY_WEIGHTS=str(weights), COVID_CORE_RUNS=str(tmp_path / "runs"))
    cmd = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("streamlit did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _covid_test_image(data: Path) -> Path:
    import pandas as pd

    meta = pd.read_csv(data / "Chest_Xray_Corona_Metadata.csv")
    row = meta[(meta["Dataset_type"] == "TEST") & (meta["Label_2_Virus_category"] == "COVID-19")].iloc[0]
    return data / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset" / "test" / row["X_ray_image_name"]


@contextlib.contextmanager
def browser_page(name: str):
    """A chromium page for one test; skips where chromium cannot run. On any failure it saves
    test-artifacts/<name>-failure.png; at the end it asserts that the app showed no exception."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # e.g. missing shared libraries in a minimal container
            pytest.skip(f"chromium cannot run here: {exc}")
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                yield page
                assert page.locator("[data-testid=stException]").count() == 0
            except Exception:
                page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
                raise
        finally:
            browser.close()


def test_upload_shows_verdict_and_heatmap(real_data, app_server):
    image = _covid_test_image(real_data)
    with browser_page("diagnose") as page:
        page.goto(app_server, wait_until="domcontentloaded")
        page.get_by_text("Research use only").first.wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(image))
        verdict = page.get_by_text("COVID-19: ", exact=False).first
        verdict.wait_for(timeout=90_000)
        assert verdict.inner_text().strip() in ("COVID-19: positive", "COVID-19: negative")
        heatmap = page.get_by_text("gradcam: evidence for", exact=False).first
        heatmap.wait_for(timeout=60_000)
        page.wait_for_function("() => [...document.querySelectorAll('img')].filter("
                               "i => i.complete && i.naturalWidth > 0 && i.width > 100).length >= 2",
                               timeout=30_000)
        page.get_by_text("On TEST at this threshold").first.wait_for(timeout=10_000)
        page.get_by_text("Download report").first.wait_for(timeout=30_000)
        time.sleep(1.0)  # let the plotly chart finish drawing
        page.screenshot(path=str(ARTIFACTS / "diagnose.png"), full_page=True)


def test_dip_shows_progress_and_preview_and_can_be_cancelled(app_server, tmp_path):
    """Denoise page: DIP runs in the background with a progress bar and live preview; Cancel stops it."""
    from app_helpers import png_bytes, xray_array

    image = tmp_path / "small.png"
    image.write_bytes(png_bytes(xray_array(128, 3)))
    with browser_page("dip") as page:
        page.goto(f"{app_server}/denoise", wait_until="domcontentloaded")
        page.get_by_text("Research use only").first.wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(image))
        page.get_by_text("Not started.").first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Run DIP").click()
        page.get_by_text("iteration ", exact=False).first.wait_for(timeout=60_000)
        page.get_by_text("Live preview").first.wait_for(timeout=90_000)  # a preview every 25 steps
        page.get_by_text("Not started.").first.wait_for(state="detached", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "dip-running.png"), full_page=True)
        page.get_by_role("button", name="Cancel DIP").click()
        done = page.get_by_text("DIP stopped", exact=False).first  # a cancelled run is not called finished
        done.wait_for(timeout=60_000)
        assert "cancelled" in done.inner_text()
        assert page.get_by_text("DIP finished", exact=False).count() == 0
        page.screenshot(path=str(ARTIFACTS / "dip-cancelled.png"), full_page=True)
