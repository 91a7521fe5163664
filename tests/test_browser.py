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


@contextlib.contextmanager
def serving(script: str, tmp_path: Path, **env):
    """``streamlit run script`` (a path from the repository's root) on a free local port; yields its URL."""
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, **env), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
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


@pytest.fixture
def app_server(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    shipped = REPO / "weights" / "resnet18.pt"
    if shipped.is_file():
        shutil.copyfile(shipped, weights / shipped.name)
    else:
        make_checkpoint(weights / "tiny_cnn.pt")
    with serving("app/streamlit_app.py", tmp_path, COVID_XRAY_WEIGHTS=str(weights),
                 COVID_CORE_RUNS=str(tmp_path / "runs")) as url:
        yield url


def _covid_test_image(data: Path) -> Path:
    import pandas as pd

    meta = pd.read_csv(data / "Chest_Xray_Corona_Metadata.csv")
    row = meta[(meta["Dataset_type"] == "TEST") & (meta["Label_2_Virus_category"] == "COVID-19")].iloc[0]
    return data / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset" / "test" / row["X_ray_image_name"]


def _outside_requests(urls: list[str], app_url: str) -> list[str]:
    """The requested URLs that go to any host but the app's own (data: and blob: URLs stay in the page)."""
    from urllib.parse import urlsplit

    own = urlsplit(app_url).netloc
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own]


@contextlib.contextmanager
def browser_page(name: str, app_url: str | None = None):
    """A chromium page for one test; skips where chromium cannot run. On any failure it saves
    test-artifacts/<name>-failure.png; at the end it asserts that the app showed no exception and, given
    ``app_url``, that the page asked no host but the app's (a hospital network may allow no other)."""
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
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            try:
                yield page
                assert page.locator("[data-testid=stException]").count() == 0
                if app_url is not None:
                    assert not _outside_requests(requested, app_url), _outside_requests(requested, app_url)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
                raise
        finally:
            browser.close()


def _nih_adult_normal_test_image(data: Path) -> Path:
    import pandas as pd

    meta = pd.read_csv(data / "Chest_Xray_Corona_Metadata.csv")
    sources = pd.read_csv(data / "provenance.csv").set_index("X_ray_image_name")["source"]
    rows = meta[(meta["Dataset_type"] == "TEST") & (meta["Label"] == "Normal")]
    name = next(n for n in rows["X_ray_image_name"] if sources.get(n) == "nih")
    return data / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset" / "test" / name


@pytest.mark.parametrize("which", ["covid", "adult_normal"])
def test_upload_shows_the_film_large_the_call_in_words_and_asks_no_other_host(real_data, app_server, which):
    image = _covid_test_image(real_data) if which == "covid" else _nih_adult_normal_test_image(real_data)
    with browser_page(f"diagnose-{which}", app_server) as page:
        page.goto(app_server, wait_until="domcontentloaded")
        page.get_by_text("Research use only").first.wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(image))
        page.get_by_text("Not validated at your hospital", exact=False).first.wait_for(timeout=90_000)
        # no site file: a first visit gets no verdict, and the reason says how to get one
        page.wait_for_function("words => words.some(w => document.body.innerText.includes(w))",
                               arg=["No verdict: this model is not validated", "No verdict: this film is unlike"],
                               timeout=90_000)
        assert "COVID-19: positive" not in page.locator("body").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"diagnose-{which}-not-validated.png"), full_page=True)
        page.get_by_text("Verdicts before site validation").first.click()  # research use: the verdict, unconfirmed
        words = ("No pneumonia seen", "Pneumonia, not COVID-19-like", "COVID-19-like pneumonia",
                 "No verdict: this film is unlike")
        page.wait_for_function("words => words.some(w => document.body.innerText.includes(w))", arg=list(words),
                               timeout=90_000)
        shown = page.locator("body").inner_text()
        if "No verdict" not in shown:
            assert "COVID-19: positive" in shown or "COVID-19: negative" in shown
            page.get_by_text("Where the model looked", exact=False).first.wait_for(timeout=60_000)
            # the call and its COVID-19 line are seen with the film, without scrolling, in a 1400x1100 window
            page.set_viewport_size({"width": 1400, "height": 1100})
            time.sleep(1.0)
            line = page.get_by_text("COVID-19: positive" if "COVID-19: positive" in shown else "COVID-19: negative",
                                    exact=False).first.bounding_box()
            assert line is not None and line["y"] + line["height"] <= 1100, line
            page.set_viewport_size({"width": 1400, "height": 1000})
        # the film fills its column: at 1400 px a film is several hundred pixels wide, not a thumbnail
        page.wait_for_function("() => [...document.querySelectorAll('img')].filter("
                               "i => i.complete && i.naturalWidth > 0 && i.width > 400).length >= 1",
                               timeout=30_000)
        page.get_by_text("Download report").first.wait_for(timeout=30_000)
        time.sleep(1.0)  # let the plotly chart finish drawing
        page.screenshot(path=str(ARTIFACTS / f"diagnose-{which}.png"), full_page=True)


def test_the_results_table_of_several_films_fits_a_1400_px_window(real_data, app_server):
    """With verdicts shown, every column of the many-files table (file, call, verdict, probabilities) is in view
    at 1400 px: no sideways scrolling to find a film's verdict."""
    films = [_covid_test_image(real_data), _nih_adult_normal_test_image(real_data)]
    with browser_page("results-table", app_server) as page:
        page.goto(app_server, wait_until="domcontentloaded")
        page.get_by_text("Research use only").first.wait_for(timeout=60_000)
        page.get_by_text("Verdicts before site validation").first.click()
        page.locator("input[type=file]").first.set_input_files([str(f) for f in films])
        page.get_by_text("Results for 2 files").first.wait_for(timeout=90_000)
        grid = page.locator("[data-testid=stDataFrame]").first
        grid.wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelector('[data-testid=stDataFrame] .dvn-scroller')",
                               timeout=30_000)
        time.sleep(1.0)  # let the grid settle its column widths
        widths = page.evaluate("() => { const s = document.querySelector('[data-testid=stDataFrame] .dvn-scroller');"
                               " return [s.scrollWidth, s.clientWidth]; }")
        page.screenshot(path=str(ARTIFACTS / "results-table.png"), full_page=True)
        assert widths[0] <= widths[1] + 1, f"the table scrolls sideways: {widths[0]} px of content in {widths[1]} px"


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


def test_a_dicom_without_an_extension_is_analysed_and_a_note_is_refused_by_its_content(app_server, tmp_path):
    """PACS exports often name films IM000001: the uploader takes any file name, and what is not an image is
    refused with the reason (the rest of the batch is still analysed)."""
    from synthetic_files import dicom_gradient

    film, note = tmp_path / "IM000001", tmp_path / "notes"
    film.write_bytes(dicom_gradient(256))
    note.write_text("exported by the PACS on 2026-12-01\n")
    with browser_page("extensionless") as page:
        page.goto(app_server, wait_until="domcontentloaded")
        page.get_by_text("Research use only").first.wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files([str(film), str(note)])
        page.get_by_text("Results for 2 files").first.wait_for(timeout=90_000)
        page.get_by_text("could not be analysed: not a recognised image (it looks like a text file)",
                         exact=False).first.wait_for(timeout=30_000)
        shown = page.locator("body").inner_text()
        page.screenshot(path=str(ARTIFACTS / "extensionless.png"), full_page=True)
        assert "not allowed" not in shown.lower()
        assert shown.count("could not be analysed") == 1  # the DICOM was read


def test_a_site_is_validated_from_a_folder_chosen_on_the_users_computer(app_server, tmp_path):
    """The browser sends each file of a chosen folder named by its path inside it ("St Elsewhere/normal/..."): the
    server must receive those paths, or the class folders, and so the labels, would be lost."""
    from app_helpers import make_site_folder

    folder = make_site_folder(tmp_path / "St Elsewhere", per_class=12)
    with browser_page("validate-folder", app_server) as page:
        page.goto(f"{app_server}/validate", wait_until="domcontentloaded")
        page.get_by_text("choose the folder on your computer").first.wait_for(timeout=60_000)
        page.locator("input[type=file][webkitdirectory]").set_input_files(str(folder))
        page.wait_for_function("document.querySelectorAll('[data-testid=stFileChip]').length === 24",
                               timeout=60_000)
        page.wait_for_timeout(2000)  # the last uploads finish
        page.get_by_role("button", name="Validate").click()
        page.get_by_text("St Elsewhere: 24 films").first.wait_for(timeout=120_000)
        shown = page.locator("body").inner_text()
        assert "By label: 12 normal and 12 COVID-19 films." in shown, shown[:2000]


def test_text_a_file_chose_fetches_nothing_and_links_nowhere(app_server, tmp_path):
    """A header value is whatever the file's maker wrote: a Manufacturer written as a Markdown image must show as
    text in the header table, not make the clinician's browser fetch it from another host. Nor may a header value
    or a file's name become a link: GitHub-flavoured Markdown links bare web and e-mail addresses by itself."""
    import numpy as np

    from app_helpers import png_bytes, xray_array
    from synthetic_files import dicom_bytes

    film, named = tmp_path / "chest.dcm", tmp_path / "see www.evil.example or me@evil.example.png"
    maker = "![seen](http://evil.example/pixel.png) ACME"
    film.write_bytes(dicom_bytes(xray_array(256).astype(np.uint16) * 16, header={"Manufacturer": maker}))
    named.write_bytes(png_bytes(xray_array(256)))
    with browser_page("dicom-header-markdown", app_server) as page:  # it asserts that no other host was asked
        for upload in (film, named):  # one at a time, each in a new session: its title and details are shown
            page.goto(app_server, wait_until="domcontentloaded")
            page.get_by_text("Research use only").first.wait_for(timeout=60_000)
            page.locator("input[type=file]").first.set_input_files([str(upload)])
            details = page.get_by_text("Raw model output", exact=False).first
            details.wait_for(timeout=90_000)
            details.click()
            if upload == film:
                page.get_by_text("DICOM field").first.wait_for(timeout=30_000)
            shown = page.locator("body").inner_text().replace("\u2060", "")  # word joiners are invisible
            assert (maker if upload == film else upload.name) in shown
            assert page.locator("img[src*='evil.example']").count() == 0
            assert page.locator("a[href*='evil.example']").count() == 0


MARKUP_FRAGMENTS = ["![x](http://evil.example/p.png)", "[a](http://evil.example)",
                    "<img src=http://evil.example/i.png>", "<b>", "</b>", "www.evil.example",
                    "https://evil.example/a_b", "me@evil.example.org", "*", "**", "_", "__", "`", "``", "~~", "$x$",
                    "$$", ":red[", "]", ":material/home:", ":smile:", "&lt;",
                    "&#60;", "&amp;", "\\", "#", "|", "- ", "1. ", "> ", "+ ", "---", "===", "\n", "  ", "scan",
                    ".png", "(", ")", "[", "!", "<", ">", "&", "@", ":", "//", "www", "Ärztin", "x"]


def test_escaped_text_shows_its_own_characters_in_the_browser(tmp_path):
    """`formatting.markdown_plain` promises that text a user or a file chose is shown as it is wherever the page
    renders Markdown. 150 seeded random names built from Markdown, HTML, LaTeX, address and directive pieces, each
    rendered escaped as Markdown and in a static table: the browser shows each name's own characters (spaces and
    line breaks folded, as for any text), draws no link, image, emphasis, code or formula, and asks no other host."""
    import json
    import random

    rng = random.Random(20261207)
    names = ["".join(rng.choice(MARKUP_FRAGMENTS) for _ in range(rng.randint(1, 6))) for _ in range(150)]
    (tmp_path / "names.json").write_text(json.dumps(names))
    script = tmp_path / "escaped.py"
    script.write_text(
        "import json, os\nimport pandas as pd\nimport streamlit as st\n"
        "from covid_core.formatting import markdown_plain\n"
        "names = json.loads(open(os.environ['NAMES_FILE']).read())\n"
        "for i, name in enumerate(names):\n"
        "    st.container(key=f'md{i}').markdown(markdown_plain(name))\n"
        "st.container(key='table').table(pd.DataFrame({'v': [markdown_plain(n) for n in names]}))\n")
    with serving(str(script), tmp_path, NAMES_FILE=str(tmp_path / "names.json")) as url:
        with browser_page("escaped-text", url) as page:  # it asserts that no other host was asked
            page.goto(url, wait_until="domcontentloaded")
            page.locator(".st-key-table td").nth(len(names) - 1).wait_for(timeout=60_000)
            shown = page.evaluate("(n) => Array.from({length: n}, (_, i) => "
                                  "document.querySelector('.st-key-md' + i).innerText)", len(names))
            cells = page.evaluate("() => Array.from(document.querySelectorAll('.st-key-table tbody tr td'))"
                                  ".map(td => td.innerText)")
            drawn = page.evaluate("() => Array.from(document.querySelectorAll("
                                  "'[class*=st-key-md] *, .st-key-table td *')).map(e => "
                                  "String(e.className).includes('katex') ? 'katex' : e.tagName.toLowerCase())")
    plain = [" ".join(n.split()) for n in names]
    assert [" ".join(t.replace("\u2060", "").split()) for t in shown] == plain
    assert [" ".join(t.replace("\u2060", "").split()) for t in cells[-len(names):]] == plain
    assert not set(drawn) & {"a", "img", "strong", "em", "code", "del", "b", "i", "katex", "ul", "ol", "li",
                             "blockquote", "h1", "h2", "h3", "hr", "table", "svg"}, set(drawn)
