"""Latency of the Diagnose page's per-image path: decode + preprocess + predict + Grad-CAM (+ DAE).

Calls the same functions the page calls (covid_core.decode.decode_image, covid_core.inference.predict,
covid_core.explain.explain + overlay, the DAE's .denoise) on one 512x512 JPEG, after the model is
loaded and warmed up. Models: weights/<name>.pt when shipped, else a randomly initialised model at
the architecture's default input size (latency does not depend on the weights' values).

    python bench/app_latency.py [--runs 20] [--image PATH]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


from covid_core.checkpoint import atomic_save, classifier_checkpoint, load_classifier
from covid_core.decode import decode_image
from covid_core.explain.cam import DEFAULT_METHOD
from covid_core.inference import predict
from covid_core.model_catalog import weights_dir
from covid_core.models import build_model, get_spec
from covid_core.preprocess import PreprocessConfig
from covid_core.targets import class_names


def xray_like_jpeg_512(path: str | None = None) -> bytes:
    """The bytes of ``path``, or a synthetic 512x512 X-ray-like JPEG (a bright oval torso with noise)."""
    if path:
        return Path(path).read_bytes()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512] / 512
    img = 0.7 * np.exp(-(((xx - 0.5) / 0.35) ** 2 + ((yy - 0.5) / 0.45) ** 2)) + 0.05 * rng.standard_normal((512, 512))
    buf = io.BytesIO()
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _checkpoint(name: str, tmp: Path) -> tuple[Path, str]:
    shipped = weights_dir() / f"{name}.pt"
    if shipped.is_file():
        return shipped, "shipped weights"
    classes = class_names("3class")
    model = build_model(name, len(classes))
    path = tmp / f"{name}.pt"
    atomic_save(classifier_checkpoint(model, model_name=name, target="3class", classes=classes,
                                      preprocess=PreprocessConfig(image_size=get_spec(name).default_image_size),
                                      threshold={"class": "covid19", "value": 0.5}), path)
    return path, "random init"


def _stats(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--image", default=None, help="a 512x512 image file (default: a synthetic 512x512 JPEG)")
    ap.add_argument("--models", default="cnn,resnet18")
    ap.add_argument("--method", default=DEFAULT_METHOD, help="a heatmap method (default: the product's)")
    args = ap.parse_args()
    from covid_core.explain import explain, overlay

    data = xray_like_jpeg_512(args.image)
    dae = None
    dae_path = weights_dir() / "dae.pt"
    if dae_path.is_file():
        from covid_core.denoise import load_dae

        dae = load_dae(dae_path)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; image {len(data)} bytes; "
          f"{args.runs} runs after 3 warm-up runs; DAE: {'yes' if dae else 'absent'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path, origin = _checkpoint(name, Path(tmp))
            clf = load_classifier(path)
            parts = {"decode": [], "predict (preprocess + forward)": [], f"{args.method} + overlay": [],
                     "dae": [], "total (decode+predict+cam)": []}
            cpu_total = []
            for i in range(args.runs + 3):
                c0 = time.process_time()
                t0 = time.perf_counter()
                img = decode_image(data, "x.jpg")
                t1 = time.perf_counter()
                pred = predict(clf, img)
                t2 = time.perf_counter()
                exp = explain(clf, img, method=args.method)
                overlay(img.pixels, exp.heatmap, opacity=0.45)
                t3 = time.perf_counter()
                c3 = time.process_time()
                if dae is not None:
                    dae.denoise(img.pixels)
                t4 = time.perf_counter()
                if i >= 3:
                    cpu_total.append(c3 - c0)
                    for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t3 - t0)):
                        parts[key].append(dt)
            print(f"\n{name} ({origin}, input {clf.preprocess.image_size} px, predicted {pred.label}):")
            for key, times in parts.items():
                if key == "dae" and dae is None:
                    continue
                print(f"  {key:32s} {_stats(times)}")
            print(f"  {'CPU time of that total':32s} {_stats(cpu_total)}   (all threads; robust to other load)")
            if dae is not None:
                print(f"  {'total with DAE':32s} {_stats([a + b for a, b in zip(parts['total (decode+predict+cam)'], parts['dae'])])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
