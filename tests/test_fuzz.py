"""Seeded random byte mutation of real-looking images through decode + predict.

Each input must either classify or raise a CovidCoreError (a message for the user): any other
exception, or any input taking over 5 s, fails the test. The number of inputs is
``$COVID_FUZZ_INPUTS`` (default 2,000); the count tried is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import io
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from covid_core.decode import decode_image
from covid_core.errors import CovidCoreError
from covid_core.inference import predict
from synthetic_files import (dicom_bytes, dicom_gradient, dicom_with_many_elements, encode, gradient,
                             lossless_jpeg, tiny_classifier)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coronahack-mini"
N_INPUTS = int(os.environ.get("COVID_FUZZ_INPUTS", "2000"))
SEED = int(os.environ.get("COVID_FUZZ_SEED", "20240607"))
MAX_SECONDS = 5.0


def _compressed_dicoms(g: np.ndarray) -> list[tuple[bytes, str]]:
    """The 8-bit gradient ``g`` as DICOMs in each compression a PACS exports, each through its own decoder: JPEG
    baseline and JPEG Lossless (pylibjpeg-libjpeg), JPEG 2000 lossless and lossy (pylibjpeg-openjpeg), RLE
    (pylibjpeg-rle, written in Rust), the data set deflated, and Implicit VR."""
    import openjpeg
    from pydicom import dcmread
    from pydicom.uid import (JPEG2000, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1,
                             RLELossless)

    g12 = g.astype(np.uint16) * 16
    eight_bits = {"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}
    rle = dcmread(io.BytesIO(dicom_gradient()))
    rle.compress(RLELossless)
    rle_file = io.BytesIO()
    rle.save_as(rle_file)
    return [
        (dicom_bytes(g, transfer_syntax=JPEGBaseline8Bit, encapsulated=encode(g, "JPEG"), header=eight_bits), "jb.dcm"),
        (dicom_bytes(g12, transfer_syntax=JPEGLosslessSV1, encapsulated=lossless_jpeg(g12)), "ll.dcm"),
        (dicom_bytes(g12, transfer_syntax=JPEG2000Lossless, encapsulated=bytes(openjpeg.encode(g12, bits_stored=12))),
         "j2k.dcm"),
        (dicom_bytes(g12, transfer_syntax=JPEG2000,
                     encapsulated=bytes(openjpeg.encode(g12, bits_stored=12, compression_ratios=[10]))), "j2kl.dcm"),
        (rle_file.getvalue(), "rle.dcm"),
        (dicom_with_many_elements(20, deflated=True), "deflated.dcm"),
        (dicom_gradient(transfer_syntax=ImplicitVRLittleEndian), "implicit.dcm"),
    ]


def _seed_files() -> list[tuple[bytes, str]]:
    """Valid files of every supported format (plus up to 3 real X-ray JPEGs when the data is present)."""
    g = gradient(64)
    rgb = np.dstack([g, g[::-1], g.T])
    seeds = [
        (encode(g, "PNG"), "a.png"), (encode(rgb, "PNG"), "rgb.png"),
        (encode(g.astype(np.uint16) * 257, "PNG"), "deep.png"),
        (encode(g, "JPEG", quality=90), "a.jpg"), (encode(rgb, "JPEG", progressive=True), "p.jpg"),
        (encode(g, "TIFF"), "a.tif"), (encode(g, "TIFF", compression="tiff_lzw"), "lzw.tif"),
        (encode(Image.fromarray(g.astype(np.float32) / 255, "F"), "TIFF"), "f.tif"),
        (encode(g, "BMP"), "a.bmp"), (encode(Image.fromarray(g).convert("P"), "PNG"), "pal.png"),
        (dicom_gradient(), "a.dcm"), (dicom_gradient(photometric="MONOCHROME1"), "m1.dcm"),
        *_compressed_dicoms(g),
    ]
    if DATA.is_dir():
        real = sorted(DATA.rglob("*.jpeg"))[:3] + sorted(DATA.rglob("*.jpg"))[:3]
        seeds += [(p.read_bytes(), p.name) for p in real[:3]]
    return seeds


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """1-4 random edits: bit flips, byte runs overwritten, cuts, insertions, duplicated blocks,
    and headers bytes set to extremes (where sizes and offsets live)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        kind = rng.randrange(7)
        pos = rng.randrange(len(buf))
        head = rng.randrange(min(len(buf), 400))  # headers sit in the first few hundred bytes
        if kind == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            for i in range(head, min(len(buf), head + rng.randint(1, 8))):
                buf[i] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif kind == 2:
            del buf[rng.randrange(len(buf)):]
        elif kind == 3:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif kind == 4:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start:start + rng.randint(1, 256)]
        elif kind == 5:
            buf[head] = rng.randrange(256)
        else:
            end = min(len(buf), pos + rng.randint(1, 64))
            del buf[pos:end]
    return bytes(buf)


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def test_fuzzed_images_never_crash_or_hang(tmp_path):
    classifier = tiny_classifier(tmp_path, image_size=64)
    seeds = _seed_files()
    rng = random.Random(SEED)
    counts = {"classified": 0, "refused": 0}
    failures, slowest = [], (0.0, None)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    # One thread: batch-of-one inference on a shared 2-core machine is ~8x faster than with two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        for i in range(N_INPUTS):
            seed_data, name = seeds[i % len(seeds)]
            data = _mutate(seed_data, rng)
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, MAX_SECONDS + 1)
            try:
                result = predict(classifier, decode_image(data, name))
                if not (np.isfinite(list(result.probabilities.values())).all()):
                    failures.append((i, name, "non-finite probabilities"))
                counts["classified"] += 1
            except CovidCoreError as exc:
                if not str(exc).strip() or "\n" in str(exc):
                    failures.append((i, name, f"message not one clear line: {exc!r}"))
                counts["refused"] += 1
            except _Timeout:
                failures.append((i, name, f"hung over {MAX_SECONDS + 1:.0f} s"))
            except BaseException as exc:  # the point of the test: anything else is a crash, a Rust decoder's
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):  # panic (a BaseException) included
                    raise
                failures.append((i, name, f"{type(exc).__name__}: {exc}"))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - t0
            if elapsed > slowest[0]:
                slowest = (elapsed, name)
            if elapsed > MAX_SECONDS:
                failures.append((i, name, f"took {elapsed:.1f} s"))
    finally:
        signal.signal(signal.SIGALRM, previous)
        torch.set_num_threads(threads)
    total = time.perf_counter() - started
    print(f"\nfuzz: {N_INPUTS} inputs from {len(seeds)} seed files (seed {SEED}) in {total:.1f} s: "
          f"{counts['classified']} classified, {counts['refused']} refused with a message, "
          f"{len(failures)} failures; slowest input {slowest[0] * 1000:.0f} ms ({slowest[1]})")
    assert N_INPUTS >= 1 and counts["classified"] + counts["refused"] + len(failures) >= N_INPUTS
    assert not failures, "\n".join(f"input {i} ({name}): {why}" for i, name, why in failures[:20])
    # A fuzzer that never gets past the decoders tests nothing downstream.
    assert counts["classified"] > N_INPUTS // 20 and counts["refused"] > N_INPUTS // 20


@pytest.mark.parametrize("seed_index", range(3))
def test_mutation_is_reproducible(seed_index):
    data, _ = _seed_files()[seed_index]
    assert _mutate(data, random.Random(seed_index)) == _mutate(data, random.Random(seed_index))
