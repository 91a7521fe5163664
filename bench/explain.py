"""Benchmark: cost of a heatmap (the product's method and layer) for one 512x512 image vs one prediction (CPU).

Goal: a heatmap costs at most 2x one prediction. Both are timed in the
same run on the same image (median of --repeats after a warm-up), for the cnn and resnet18
with random weights at their default input size, and for weights/resnet18.pt if present.
"Heatmap" is explain(..., with_faithfulness=False); "full" adds the ROAD faithfulness score
and is reported separately.

    nice -n 10 python bench/explain.py [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from covid_core.checkpoint import Classifier, load_classifier
from covid_core.explain import explain
from covid_core.inference import predict
from covid_core.models import build_model, get_spec
from covid_core.preprocess import PreprocessConfig
from covid_core.targets import CLASSES


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: lazy imports, allocator, oneDNN kernels
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _random_classifier(name: str) -> Classifier:
    torch.manual_seed(0)
    classes = CLASSES["3class"]
    spec = get_spec(name)
    return Classifier(model=build_model(name, len(classes)).eval(), spec=spec, classes=classes, target="3class",
                      preprocess=PreprocessConfig(image_size=spec.default_image_size))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).random((512, 512)).astype(np.float32)
    runs = [(f"{n} (random weights)", _random_classifier(n)) for n in ("cnn", "resnet18")]
    shipped = REPO / "weights" / "resnet18.pt"
    if shipped.is_file():
        runs.append(("weights/resnet18.pt", load_classifier(shipped)))
    else:
        print(f"({shipped} not found: shipped-weights row skipped)")
    print(f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats} (median), image 512x512")
    print(f"{'model':28s} {'input':>5s} {'predict':>9s} {'heatmap':>9s} {'ratio':>6s} {'+ faithf.':>9s} {'ratio':>6s}")
    worst = 0.0
    for label, clf in runs:
        t_pred = _median_seconds(lambda: predict(clf, image), args.repeats)
        t_cam = _median_seconds(lambda: explain(clf, image, with_faithfulness=False), args.repeats)
        t_full = _median_seconds(lambda: explain(clf, image), args.repeats)
        worst = max(worst, t_cam / t_pred)
        print(f"{label:28s} {clf.preprocess.image_size:5d} {t_pred * 1e3:7.1f}ms {t_cam * 1e3:7.1f}ms "
              f"{t_cam / t_pred:5.2f}x {t_full * 1e3:7.1f}ms {t_full / t_pred:5.2f}x")
    print(f"worst heatmap / prediction ratio: {worst:.2f}x (goal <= 2x): {'met' if worst <= 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
