"""Server memory under hostile uploads: 20 small files that declare huge images, uploaded through the app.

Starts its own Streamlit server on 127.0.0.1 (loopback only) with a tiny classifier, opens the Diagnose page
in headless Chromium and uploads, as one batch each:

  films    20 ordinary 512x512 PNG films (the baseline, same server, same session),
  hostile  20 hostile files: 10 deflate-compressed DICOMs of 7000x8500 16-bit zeros (about 116 KB each,
           119 MB inflated), 5 JPEG 2000 DICOMs that declare 8000x7000 pixels, 5 PNGs of 7000x8500 zeros.
  inside   10 JPEG 2000 DICOMs of about 1 KB whose header says 512x512 but whose codestream holds 12000x12000
           zeros (the decoder allocates what the codestream says).
  flooded  5 DICOMs whose header holds a private sequence of 2.5 million one-element items (pydicom builds an
           object for each): 4 deflate-compressed (117 KB each, 45 MB inflated) and 1 plain (45 MB); their
           512x512 image is blank, so a decoder that parses the whole header refuses them only after it.

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
import time
from pathlib import Path

import numpy as np
from PIL import Image

from load_test import MemoryWatch, serving_app, tree_rss_mb, xray_png  # bench/ is on sys.path

REPO = Path(__file__).resolve().parents[1]


def _dicom(pixels_shape, transfer_syntax, name: str, encapsulated: bytes | None = None) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.Modality = name, "DX"
    ds.Rows, ds.Columns = pixels_shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if encapsulated is not None:
        ds.PixelData = encapsulate([encapsulated])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = np.zeros(pixels_shape, np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def hostile_files() -> list[dict]:
    from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless

    files = []
    for i in range(10):
        files.append({"name": f"deflated{i}.dcm", "mimeType": "application/dicom",
                      "buffer": _dicom((8500, 7000), DeflatedExplicitVRLittleEndian, f"Bomb^{i}")})
    for i in range(5):
        files.append({"name": f"declared{i}.dcm", "mimeType": "application/dicom",
                      "buffer": _dicom((8000, 7000), JPEG2000Lossless, f"Huge^{i}",
                                       encapsulated=b"\xff\x4f\xff\x51" + bytes([i]) * 64)})
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
    return [{"name": f"inside{i}.dcm", "mimeType": "application/dicom",
             "buffer": _dicom((512, 512), JPEG2000Lossless, f"Inside^{i}", encapsulated=stream)} for i in range(10)]


def flooded_files(items: int = 2_500_000) -> list[dict]:
    import struct
    import zlib

    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    def data_set_offset(data: bytes) -> int:
        fp = io.BytesIO(data)
        read_preamble(fp, True)
        _read_file_meta_info(fp)
        return fp.tell()

    item = struct.pack("<HHI", 0xFFFE, 0xE000, 10) + struct.pack("<HH2sHH", 0x0009, 0x1010, b"US", 2, 1)
    sequence = (struct.pack("<HH2sHI", 0x0009, 0x1020, b"SQ", 0, 0xFFFFFFFF) + item * items
                + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    plain = _dicom((512, 512), ExplicitVRLittleEndian, "Flood^plain")
    at = plain.index(struct.pack("<HH", 0x7FE0, 0x0010))
    plain = plain[:at] + sequence + plain[at:]
    meta = _dicom((512, 512), DeflatedExplicitVRLittleEndian, "Flood^deflated")
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = meta[:data_set_offset(meta)] + packer.compress(plain[data_set_offset(plain):]) + packer.flush()
    return ([{"name": f"flooded{i}.dcm", "mimeType": "application/dicom", "buffer": deflated} for i in range(4)]
            + [{"name": "flooded-plain.dcm", "mimeType": "application/dicom", "buffer": plain}])


def upload_batch(page, url: str, files: list[dict], timeout_s: float) -> dict:
    page.goto(url, timeout=timeout_s * 1000)
    upload = page.locator('input[type="file"]').first
    upload.wait_for(state="attached", timeout=timeout_s * 1000)
    t0 = time.perf_counter()
    upload.set_input_files(files=files)
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
    batches = {"films": films, "hostile": hostile_files(), "inside": codestream_files(), "flooded": flooded_files()}
    for name in ("hostile", "inside", "flooded"):
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
    for name in ("hostile", "inside", "flooded"):
        r = results[name]
        ratio = r["peak_mb"] / max(results["films"]["peak_mb"], 1)
        ok = r["peak_mb"] < 3072 and r["refused"] + r["scored"] == len(batches[name])
        print(f"{name} / films peak memory: {ratio:.2f}x; goal under 3 GB with every file refused or scored: "
              f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
