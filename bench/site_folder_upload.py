"""Validating a site from a folder chosen in the browser, against the same folder given as a path on the server.

A site's DICOM films are too large for one zip under the upload limit (50 MB), so the Validate page also takes a
folder chosen on the user's computer: the browser sends each file, and the server writes the films into a temporary
folder (``covid_core.archive.write_labelled_files``). This bench makes a site of N synthetic 16-bit DICOM films of
SIDE x SIDE pixels (half normal/, half covid19/; uncompressed, as a modality exports them), serves the app on
127.0.0.1 with the shipped resnet18 and, in headless Chromium:

  server   types the folder's path (the baseline: nothing is uploaded), clicks Validate, waits for the report;
  chosen   chooses the same folder, waits until every file is uploaded, clicks Validate, waits for the report.

It prints, for each, the seconds to upload and to validate and the server's peak resident memory (the process
tree, sampled every 100 ms) and the memory it holds 5 s after the report is shown (the tab still open), then the
ratios of the chosen folder to the baseline, and the server's memory once both tabs have been closed for longer
than Streamlit keeps a closed tab's session, and again once another tab has opened the app and been closed
(Streamlit lets go of expired sessions only when it stores another). Last, the same folder goes to a bare
Streamlit app that only receives it (no covid_core), to tell what Streamlit's upload itself keeps. Over loopback,
so the upload takes far less time than over a network.

    python bench/site_folder_upload.py [--films 40] [--side 2048] [--checkpoint weights/resnet18.pt]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from covid_core.freed_memory import RELEASE_EVERY_S
from load_test import MemoryWatch, serving_app, tree_rss_mb  # bench/ is on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the synthetic file makers the tests use
from app_helpers import site_film  # noqa: E402
from synthetic_files import dicom_bytes  # noqa: E402

CLOSED_TTL_S = 120  # server.disconnectedSessionTTL, Streamlit's default
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def make_site(root: Path, films: int, side: int) -> int:
    """``films`` DICOMs in root/normal and root/covid19 (a 64 px synthetic film scaled up to ``side``, 12 bits);
    returns their bytes in all."""
    total = 0
    for k, cls in enumerate(("normal", "covid19")):
        (root / cls).mkdir(parents=True)
        for i in range(films // 2):
            small = site_film(cls, i, k).astype(np.uint16) * 16
            big = np.kron(small, np.ones((side // 64, side // 64), np.uint16))
            data = dicom_bytes(big, patient_name=f"Site^{cls}{i}")
            (root / cls / f"IM{i:06d}").write_bytes(data)  # named as a PACS names them: no extension
            total += len(data)
    return total


def validate(page, url: str, name: str, films: int, timeout_s: float, folder: Path, chosen: bool) -> dict:
    page.goto(url + "validate", timeout=timeout_s * 1000)
    page.get_by_text("choose the folder on your computer").first.wait_for(timeout=timeout_s * 1000)
    t0 = time.perf_counter()
    if chosen:
        page.locator("input[type=file][webkitdirectory]").set_input_files(str(folder))
        page.wait_for_function(f"document.querySelectorAll('[data-testid=stFileChip]').length === {films} && "
                               "!document.querySelector('[role=progressbar]')", timeout=timeout_s * 1000)
    else:
        page.get_by_role("textbox", name="Folder of your labelled films").fill(str(folder))
    uploaded = time.perf_counter()
    page.get_by_role("textbox", name="Site name").fill(name)
    page.get_by_role("button", name="Validate").click()
    try:
        page.get_by_text(f"{name}: {films} films").first.wait_for(timeout=timeout_s * 1000)
    except Exception:
        print(page.locator("[data-testid=stMain]").inner_text()[-1500:], file=sys.stderr)
        raise
    done = time.perf_counter()
    return {"upload_s": uploaded - t0, "validate_s": done - uploaded}


BARE_APP = """import streamlit as st
files = st.file_uploader("folder", accept_multiple_files="directory")
st.write(f"{len(files or [])} files received")
"""


def visit_once(browser, url: str, timeout_s: float) -> None:
    """Another user opens the app and closes the tab: Streamlit lets go of closed sessions whose time has run out
    only when it stores another one, not by a clock. Then wait until the app has handed freed memory back to the
    system (covid_core.freed_memory, every RELEASE_EVERY_S seconds)."""
    page = browser.new_page()
    page.goto(url, timeout=timeout_s * 1000)
    page.wait_for_selector("[data-testid=stMain]", timeout=timeout_s * 1000)
    time.sleep(3)
    page.close()
    time.sleep(RELEASE_EVERY_S + 10)


def bare_streamlit(folder: Path, films: int, timeout_s: float, work: Path, pw) -> dict:
    """The same folder uploaded to a Streamlit app that only receives it (no covid_core): what Streamlit's upload
    itself costs the server, and keeps."""
    script = work / "bare_app.py"
    script.write_text(BARE_APP)
    with serving_app(script=script) as (url, pid):
        idle = tree_rss_mb(pid)
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url, timeout=timeout_s * 1000)
        page.locator("input[type=file]").set_input_files(str(folder))
        page.get_by_text(f"{films} files received").wait_for(timeout=timeout_s * 1000)
        time.sleep(5)
        held = tree_rss_mb(pid)
        page.close()
        time.sleep(CLOSED_TTL_S + 15)
        closed = tree_rss_mb(pid)
        visit_once(browser, url, timeout_s)
        browser.close()
        return {"idle_mb": idle, "held_mb": held, "closed_mb": closed, "visited_mb": tree_rss_mb(pid)}


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", type=int, default=40, help="films in the site (half normal, half COVID-19)")
    ap.add_argument("--side", type=int, default=2048, help="pixels a side (a multiple of 64)")
    ap.add_argument("--checkpoint", default=str(REPO / "weights" / "resnet18.pt"))
    ap.add_argument("--timeout", type=float, default=900.0, help="per-route time limit, seconds")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="site_folder_upload_"))
    try:
        folder = work / "St Elsewhere"
        size = make_site(folder, args.films, args.side)
        print(f"site: {args.films} DICOM films of {args.side}x{args.side} 16-bit pixels, {size / 2**20:.0f} MB in all "
              f"({size / args.films / 2**20:.1f} MB each)")
        os.environ["COVID_XRAY_DATA_ROOTS"] = str(work)  # the server-folder route must lie inside a data root
        results = {}
        with serving_app(args.checkpoint) as (url, pid), sync_playwright() as pw:
            idle = tree_rss_mb(pid)
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                         args=CHROMIUM_ARGS)
            for route, chosen in (("server", False), ("chosen", True)):
                page = browser.new_page(viewport={"width": 1280, "height": 900})  # a session of its own
                watch = MemoryWatch(pid)
                watch.start()
                try:
                    results[route] = validate(page, url, f"{route}-folder", args.films, args.timeout, folder, chosen)
                finally:
                    watch.stop.set()
                    watch.join()
                time.sleep(5)  # the page's next run lets go of what the finished validation no longer needs
                results[route].update(peak_mb=watch.peak, end_mb=tree_rss_mb(pid))
                page.close()
            time.sleep(CLOSED_TTL_S + 15)  # a closed tab's session, and its uploads, may be dropped after this
            closed = tree_rss_mb(pid)
            visit_once(browser, url, args.timeout)
            visited = tree_rss_mb(pid)
            browser.close()
        with sync_playwright() as pw:
            bare = bare_streamlit(folder, args.films, args.timeout, work, pw)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"server idle: {idle:.0f} MB; {CLOSED_TTL_S + 15} s after both tabs were closed: {closed:.0f} MB; "
          f"after another tab then opened the app and was closed: {visited:.0f} MB")
    for route, r in results.items():
        print(f"{route:>7} folder: upload {r['upload_s']:.1f} s, validation {r['validate_s']:.1f} s; server peak "
              f"{r['peak_mb']:.0f} MB, after {r['end_mb']:.0f} MB")
    base, chosen = results["server"], results["chosen"]
    to_report = (chosen["upload_s"] + chosen["validate_s"]) / max(base["upload_s"] + base["validate_s"], 1e-9)
    print(f"chosen / server folder: time to the report {to_report:.2f}x, peak memory "
          f"{chosen['peak_mb'] / max(base['peak_mb'], 1):.2f}x, memory held after "
          f"{chosen['end_mb'] / max(base['end_mb'], 1):.2f}x")
    print(f"a bare Streamlit app receiving the same folder: idle {bare['idle_mb']:.0f} MB, 5 s after the upload "
          f"{bare['held_mb']:.0f} MB (+{bare['held_mb'] - bare['idle_mb']:.0f} MB, "
          f"{(bare['held_mb'] - bare['idle_mb']) * 2**20 / size:.1f}x the folder), {CLOSED_TTL_S + 15} s after its tab "
          f"was closed {bare['closed_mb']:.0f} MB, after another tab then opened it and was closed "
          f"{bare['visited_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
