"""Time and memory of decoding a DICOM film stored plain and deflate-compressed, and of refusing a flooded header.

Builds, in memory, one 2400x2000 12-bit film (a gradient with noise, about 9 MB of pixels) saved in Explicit VR
Little Endian (the baseline) and in Deflated Explicit VR Little Endian, and a deflate-compressed header flooded
with 2.5 million one-element sequence items (45 MB inflated, refused by the element budget). Each is decoded with
``covid_core.decode.decode_image`` ``--repeats`` times; the bench prints the median wall time, the peak of
Python's traced allocations (tracemalloc, which sees NumPy's and zlib's buffers as Python objects) and both as
ratios to the plain film's, measured in this process.

    python bench/dicom_decode.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic file makers
from synthetic_files import dicom_bytes, dicom_with_many_elements  # noqa: E402

from covid_core.decode import decode_image  # noqa: E402
from covid_core.errors import InvalidImageError  # noqa: E402


def film(height: int = 2400, width: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.linspace(0, 3000, height), np.linspace(0, 1000, width))
    return (ramp + rng.normal(0, 40, (height, width))).clip(0, 4095).astype(np.uint16)


def measure(data: bytes, repeats: int) -> dict:
    seconds, outcome = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            image = decode_image(data, "film.dcm")
            outcome = f"decoded {image.width}x{image.height}"
        except InvalidImageError as exc:
            outcome = f"refused: {str(exc)[:60]}..."
        seconds.append(time.perf_counter() - t0)
    tracemalloc.start()
    try:
        decode_image(data, "film.dcm")
    except InvalidImageError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": statistics.median(seconds), "peak_mb": peak / 2**20, "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    pixels = film()
    files = {"plain film (baseline)": dicom_bytes(pixels),
             "deflated film": dicom_bytes(pixels, transfer_syntax=DeflatedExplicitVRLittleEndian),
             "deflated flooded header": dicom_with_many_elements(2_500_000, deflated=True)}
    rows = {name: measure(data, args.repeats) | {"kb": len(data) / 1024} for name, data in files.items()}
    base = rows["plain film (baseline)"]
    print("| file | on disk | outcome | median time | x baseline | traced peak | x baseline |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['kb']:,.0f} KB | {r['outcome']} | {r['seconds'] * 1000:.0f} ms | "
              f"{r['seconds'] / base['seconds']:.2f} | {r['peak_mb']:.1f} MB | {r['peak_mb'] / base['peak_mb']:.2f} |")


if __name__ == "__main__":
    main()
