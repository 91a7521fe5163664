"""Memory and time of reading a site's films for validation: scored a chunk at a time, against all at once.

``validate-site`` decodes every film of the site's folder and scores it with the shipped model and, where the
model checks orientation, four turned copies of it. Scoring all films at once (the baseline, the same code with
the chunk as large as the folder) holds every film's pixels and builds four turned copies of the whole stack;
scoring SCORE_CHUNK films at a time keeps only their features. Both runs happen in this process, one after the
other; the figure is the rise of the process's peak resident memory (VmHWM, reset before each run through
/proc/self/clear_refs) over what it held before the run, with the time taken and the ratio to the baseline.

The films are synthetic 512x512 X-ray-like JPEGs written to a temporary folder (deleted at the end), half in
``test/covid19`` and half in ``test/normal``; they are all alike, so the scores mean nothing, only the cost does.

    python bench/site_memory.py [--films 600] [--checkpoint weights/resnet18.pt]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from app_latency import xray_like_jpeg_512  # bench/ is on sys.path
from load_test import status_kb

REPO = Path(__file__).resolve().parents[1]


def peak_reset() -> int:
    """Reset the peak resident memory to the current one and return it (bytes)."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak()


def peak() -> int:
    kb = status_kb("VmHWM")
    if not kb:
        raise RuntimeError("no VmHWM in /proc/self/status")
    return kb * 1024


def site_folder(root: Path, films: int) -> Path:
    """``films`` synthetic JPEGs in two class folders, each with its number in a JPEG comment, so none is a
    duplicate of another."""
    data = xray_like_jpeg_512()
    for i in range(films):
        folder = root / "test" / ("covid19" if i % 2 else "normal")
        folder.mkdir(parents=True, exist_ok=True)
        comment = f"film {i}".encode()
        (folder / f"film{i:05d}.jpg").write_bytes(data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big")
                                                  + comment + data[2:])
    return root


def measure(classifier, folder: Path, chunk: int) -> tuple[float, float, int]:
    """(peak memory rise in MB, seconds, films scored) of ``site_films`` with SCORE_CHUNK = ``chunk``."""
    from covid_core import site_scoring

    site_scoring.SCORE_CHUNK, default = chunk, site_scoring.SCORE_CHUNK
    try:
        before = peak_reset()
        start = time.perf_counter()
        films = site_scoring.site_films(classifier, folder)
        seconds = time.perf_counter() - start
        rise = (peak() - before) / 2**20
    finally:
        site_scoring.SCORE_CHUNK = default
    return rise, seconds, len(films["table"])


def main() -> int:
    from covid_core.checkpoint import load_classifier
    from covid_core.site_scoring import SCORE_CHUNK

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", type=int, default=600)
    ap.add_argument("--checkpoint", default=str(REPO / "weights" / "resnet18.pt"))
    args = ap.parse_args()
    classifier = load_classifier(args.checkpoint)
    tmp = Path(tempfile.mkdtemp(prefix="site_memory_"))
    try:
        folder = site_folder(tmp, args.films)
        measure(classifier, folder, SCORE_CHUNK)  # warm-up: the first forward passes allocate torch's buffers
        runs = {"all at once (baseline)": measure(classifier, folder, 10**9),
                f"{SCORE_CHUNK} at a time": measure(classifier, folder, SCORE_CHUNK)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base_mb, base_s, _ = runs["all at once (baseline)"]
    print(f"{Path(args.checkpoint).name}, {args.films} synthetic 512x512 films")
    print("| scoring | films | peak memory rise MB | KB per film | ratio | seconds | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, (mb, seconds, n) in runs.items():
        print(f"| {name} | {n} | {mb:.0f} | {1024 * mb / n:.0f} | {mb / base_mb:.2f} | {seconds:.1f} | "
              f"{seconds / base_s:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
