"""Load test: N simultaneous browser sessions each upload a 512x512 chest X-ray to the Diagnose page.

Starts its own Streamlit server on 127.0.0.1 (loopback only) with a tiny classifier checkpoint in a
temporary weights folder, opens N headless Chromium contexts at once (Playwright, /usr/bin/chromium),
uploads one image per session and waits for its verdict. Prints each session's latency (upload to
verdict shown), the median and p95, whether every prediction came back, and the server's peak
resident memory (the process tree, sampled every 100 ms).

    python bench/load_test.py [--sessions 8] [--checkpoint weights/x.pt] [--timeout 180]

Bounded: at most 16 sessions, one upload each, a hard time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "coronahack-mini"
VERDICT = "COVID-19:"  # the Diagnose page's verdict card starts with this for covid-capable models


def xray_png(seed: int) -> bytes:
    """A 512x512 grayscale PNG: a real data-set image when present (read, never copied), else synthetic."""
    real = sorted(DATA.rglob("*.jpeg"))[:16] if DATA.is_dir() else []
    if real:
        img = Image.open(real[seed % len(real)]).convert("L").resize((512, 512))
    else:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[-1:1:512j, -1:1:512j]
        lungs = np.exp(-((np.abs(xx) - 0.4) ** 2 / 0.06 + yy ** 2 / 0.5))
        img = Image.fromarray(np.clip(200 - 120 * lungs + rng.normal(0, 8, (512, 512)), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def tiny_checkpoint(folder: Path) -> Path:
    import torch

    from covid_core.checkpoint import atomic_save, classifier_checkpoint
    from covid_core.models import build_model
    from covid_core.preprocess import PreprocessConfig
    from covid_core.targets import class_names

    torch.manual_seed(0)
    classes = class_names("3class")
    path = folder / "load-test-cnn.pt"
    atomic_save(classifier_checkpoint(build_model("cnn", len(classes)), model_name="cnn", target="3class",
                                      classes=classes, preprocess=PreprocessConfig(image_size=128),
                                      threshold={"class": "covid19", "value": 0.5}), path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(field: str, pid: int | str = "self") -> int:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM...), KB; 0 when the process does not report it (a kernel
    thread, a zombie). Raises OSError when the process is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += status_kb("VmRSS", p)
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo += [int(c) for c in children]
        except OSError:
            pass
    return total / 1024


class MemoryWatch(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self.stop = pid, 0.0, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            mb = tree_rss_mb(self.pid)
            self.samples.append(mb)
            self.peak = max(self.peak, mb)
            time.sleep(0.1)


async def one_session(browser, url: str, png: bytes, index: int, timeout_s: float) -> dict:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    result = {"session": index, "ok": False, "latency_s": None, "error": None}
    try:
        await page.goto(url, timeout=timeout_s * 1000)
        upload = page.locator('input[type="file"]').first
        await upload.wait_for(state="attached", timeout=timeout_s * 1000)
        t0 = time.perf_counter()
        await upload.set_input_files(files=[{"name": f"xray{index}.png", "mimeType": "image/png", "buffer": png}])
        await page.get_by_text(VERDICT).first.wait_for(timeout=timeout_s * 1000)
        result.update(ok=True, latency_s=time.perf_counter() - t0)
    except Exception as exc:  # a failed session is a result to report, not a crash of the benchmark
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        await context.close()
    return result


async def run_sessions(url: str, n: int, timeout_s: float) -> list[dict]:
    from playwright.async_api import async_playwright

    pngs = [xray_png(i) for i in range(n)]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                           args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(one_session(browser, url, pngs[i], i, timeout_s) for i in range(n))),
                timeout=timeout_s * 2)
        finally:
            await browser.close()


@contextlib.contextmanager
def serving_app(checkpoint: str | None = None, app_root: Path = REPO, script: Path | None = None):
    """A Streamlit server of ``app_root``'s app (or of another ``script``) on 127.0.0.1 with one classifier
    (``checkpoint``, or a random tiny cnn) in a temporary weights folder; yields (url, server pid); stops it and
    removes its files at the end."""
    work = Path(tempfile.mkdtemp(prefix="bench_app_"))
    weights = work / "weights"
    weights.mkdir()
    if checkpoint:
        shutil.copy(checkpoint, weights / Path(checkpoint).name)
    else:
        tiny_checkpoint(weights)
    port = free_port()
    env = dict(os.environ, COVID_XRAY_WEIGHTS=str(weights), COVID_CORE_RUNS=str(work / "runs"),
               COVID_CORE_CACHE=str(work / "cache"))
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script or Path(app_root) / "app" / "streamlit_app.py"),
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=app_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "_stcore/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the app server did not start: " + server.stdout.read1().decode()[-3000:])
                time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8, help="simultaneous browser sessions (1-16)")
    ap.add_argument("--checkpoint", default=None, help="classifier to serve (default: a random tiny cnn)")
    ap.add_argument("--timeout", type=float, default=180.0, help="per-session time limit, seconds")
    args = ap.parse_args()
    n = max(1, min(args.sessions, 16))

    with serving_app(args.checkpoint) as (url, pid):
        watch = MemoryWatch(pid)
        idle_mb = tree_rss_mb(pid)
        watch.start()
        started = time.perf_counter()
        results = asyncio.run(run_sessions(url, n, args.timeout))
        wall = time.perf_counter() - started
        watch.stop.set()
        watch.join()

    ok = [r for r in results if r["ok"]]
    lat = sorted(r["latency_s"] for r in ok)
    print(f"sessions: {n} simultaneous, each uploading one 512x512 PNG; {len(ok)}/{n} predictions returned "
          f"in {wall:.1f} s wall")
    for r in results:
        print(f"  session {r['session']}: " + (f"{r['latency_s']:.2f} s" if r["ok"] else f"FAILED {r['error']}"))
    if lat:
        p95 = float(np.percentile(lat, 95))
        print(f"latency upload->verdict: median {statistics.median(lat):.2f} s, p95 {p95:.2f} s, max {lat[-1]:.2f} s")
    print(f"server memory (process tree RSS): idle {idle_mb:.0f} MB, peak {watch.peak:.0f} MB, "
          f"end {watch.samples[-1] if watch.samples else float('nan'):.0f} MB")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return 0 if len(ok) == n else 1


if __name__ == "__main__":
    sys.exit(main())
