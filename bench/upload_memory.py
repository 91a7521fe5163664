"""Server memory and time under hostile uploads through the app (files that declare huge images, or cost more).

Starts its own Streamlit server on 127.0.0.1 (loopback only) with a tiny classifier, opens the Diagnose page
in headless Chromium and uploads, as one batch each:

  films    20 ordinary 512x512 PNG films (the baseline, same server, same session),
  hostile  20 hostile files: 10 deflate-compressed DICOMs of 7000x8500 16-bit zeros (about 116 KB each,
           119 MB inflated), 5 JPEG 2000 DICOMs that declare 8000x7000 pixels, 5 PNGs of 7000x8500 zeros.
  inside   10 JPEG 2000 DICOMs of about 1 KB whose header says 512x512 but whose codestream holds 12000x12000
           zeros (the decoder allocates what the codestream says).
  flooded  5 DICOMs whose header holds a private sequence of 2.5 million one-element items (pydicom builds an
           object for each): 4 deflate-compressed (about 110 KB each, 45 MB inflated) and 1 plain (45 MB); their
           image is a sound 64x64 film, so a decoder that parses the whole header refuses them only after it.
  decoders 8 files that cost a decoder far more than their size: 2 RLE DICOMs of a 64x64 film (45 MB of runs
           that expand to 2.9 GB; 20 MB of no-op bytes), a 2000x2000 progressive JPEG of 60,000 near-empty scans
           and a DICOM film of 20,000, a TIFF whose XResolution holds 6 million fractions, a PNG whose EXIF says
           "rotate" and holds 5 million, an animated PNG of 101 3000x3000 frames, and a run-length BMP of a 64x64
           image whose 45 MB of data are end-of-line escapes.

For each batch it waits for the results table, counts the files scored and refused, and prints the server's
peak resident memory (the process tree, sampled every 100 ms) and the ratio to the baseline batch.
Goal for each hostile batch: under 3 GB, with every file refused or scored.

    python bench/upload_memory.py [--timeout 300]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from load_test import MemoryWatch, serving_app, tree_rss_mb, xray_png  # bench/ is on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the synthetic file makers the hostile-input tests use
from synthetic_files import (dicom_bytes, dicom_with_many_elements, png_with_exif, progressive_jpeg,  # noqa: E402
                             rle_dicom, run_length_bmp, tiff_strips)


def _dicom_file(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "application/dicom", "buffer": data}


def hostile_files() -> list[dict]:
    from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless

    files = []
    for i in range(10):
        files.append(_dicom_file(f"deflated{i}.dcm", dicom_bytes(np.zeros((8500, 7000), np.uint16),
                                                                 transfer_syntax=DeflatedExplicitVRLittleEndian,
                                                                 patient_name=f"Bomb^{i}")))
    for i in range(5):
        files.append(_dicom_file(f"declared{i}.dcm", dicom_bytes(
            None, transfer_syntax=JPEG2000Lossless, encapsulated=b"\xff\x4f\xff\x51" + bytes([i]) * 64,
            patient_name=f"Huge^{i}", header={"Rows": 8000, "Columns": 7000})))
    for i in range(5):
        buf = io.BytesIO()
        img = Image.new("L", (7000, 8500), 0)
        img.putpixel((i, i), 255)
        img.save(buf, "PNG", optimize=True)
        files.append({"name": f"zeros{i}.png", "mimeType": "image/png", "buffer": buf.getvalue()})
    return files


def codestream_files() -> list[dict]:
    import openjpeg
    from pydicom.uid import JPEG2000Lossless

    stream = openjpeg.encode(np.zeros((12000, 12000), np.uint16), bits_stored=12)
    return [_dicom_file(f"inside{i}.dcm", dicom_bytes(np.zeros((512, 512), np.uint16), patient_name=f"Inside^{i}",
                                                      transfer_syntax=JPEG2000Lossless, encapsulated=stream))
            for i in range(10)]


def flooded_files(items: int = 2_500_000) -> list[dict]:
    deflated = dicom_with_many_elements(items, deflated=True)
    return ([_dicom_file(f"flooded{i}.dcm", deflated) for i in range(4)]
            + [_dicom_file("flooded-plain.dcm", dicom_with_many_elements(items))])


def decoder_files() -> list[dict]:
    from pydicom.uid import JPEGBaseline8Bit

    scans_film = dicom_bytes(np.zeros((2000, 2000), np.uint16), transfer_syntax=JPEGBaseline8Bit,
                             encapsulated=progressive_jpeg(20_000, 2000),
                             header={"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7})
    frames = [Image.new("L", (3000, 3000), 255 * (i % 2)) for i in range(101)]  # each frame differs whole
    animated = io.BytesIO()
    frames[0].save(animated, "PNG", save_all=True, append_images=frames[1:])
    return [_dicom_file("rle-runs.dcm", rle_dicom(b"\x81\x00" * 22_500_000)),
            _dicom_file("rle-no-ops.dcm", rle_dicom(b"\x80" * 20_000_000)),
            {"name": "scans.jpg", "mimeType": "image/jpeg", "buffer": progressive_jpeg(60_000, 2000)},
            _dicom_file("scans.dcm", scans_film),
            {"name": "fractions.tif", "mimeType": "image/tiff",
             "buffer": tiff_strips([1], rows_per_strip=64, numbers=(282, 5, 6_000_000))},
            {"name": "exif.png", "mimeType": "image/png", "buffer": png_with_exif(6, 5_000_000)},
            {"name": "animated.png", "mimeType": "image/png", "buffer": animated.getvalue()},
            {"name": "escapes.bmp", "mimeType": "image/bmp",
             "buffer": run_length_bmp(np.zeros((64, 64), np.uint8), tail=b"\x00\x00" * 22_500_000)}]


def upload_batch(page, url: str, files: list[dict], timeout_s: float) -> dict:
    page.goto(url, timeout=timeout_s * 1000)
    upload = page.locator('input[type="file"]').first
    upload.wait_for(state="attached", timeout=timeout_s * 1000)
    with tempfile.TemporaryDirectory(prefix="upload_memory_") as folder:  # Playwright takes 50 MB in buffers at most
        paths = []
        for f in files:
            paths.append(Path(folder) / f["name"])
            paths[-1].write_bytes(f["buffer"])
        t0 = time.perf_counter()
        upload.set_input_files(files=paths)  # the browser reads them as it uploads: the folder stays until then
        page.get_by_text(f"Results for {len(files)} files").first.wait_for(timeout=timeout_s * 1000)
    time.sleep(1.0)
    refused = page.get_by_text("could not be analysed", exact=False).count()
    return {"seconds": time.perf_counter() - t0, "refused": refused, "scored": len(files) - refused}


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=300.0, help="per-batch time limit, seconds")
    ap.add_argument("--app-root", default=str(REPO),
                    help="the checkout whose app to serve (e.g. a worktree of an older commit, to compare)")
    args = ap.parse_args()
    films = [{"name": f"film{i}.png", "mimeType": "image/png", "buffer": xray_png(i)} for i in range(20)]
    made = time.perf_counter()
    batches = {"films": films, "hostile": hostile_files(), "inside": codestream_files(), "flooded": flooded_files(),
               "decoders": decoder_files()}
    hostile = [name for name in batches if name != "films"]
    for name in hostile:
        print(f"{name} batch: {len(batches[name])} files, {sum(len(f['buffer']) for f in batches[name]) / 1024:.0f} "
              f"KB in all")
    print(f"(made in {time.perf_counter() - made:.1f} s)")

    results = {}
    with serving_app(app_root=Path(args.app_root)) as (url, pid), sync_playwright() as pw:
        idle = tree_rss_mb(pid)
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                           "--disable-background-networking", "--disable-component-update",
                                           "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, batch in batches.items():
            watch = MemoryWatch(pid)
            watch.start()
            try:
                results[name] = upload_batch(page, url, batch, args.timeout)
            finally:
                watch.stop.set()
                watch.join()
            results[name].update(peak_mb=watch.peak, end_mb=tree_rss_mb(pid))
        browser.close()

    print(f"server idle: {idle:.0f} MB")
    for name, r in results.items():
        print(f"{name:>8}: {r['scored']} scored, {r['refused']} refused in {r['seconds']:.1f} s; server peak "
              f"{r['peak_mb']:.0f} MB, after the batch {r['end_mb']:.0f} MB")
    for name in hostile:
        r = results[name]
        ratio = r["peak_mb"] / max(results["films"]["peak_mb"], 1)
        ok = r["peak_mb"] < 3072 and r["refused"] + r["scored"] == len(batches[name])
        print(f"{name} / films peak memory: {ratio:.2f}x; goal under 3 GB with every file refused or scored: "
              f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
