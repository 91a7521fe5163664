"""A heatmap made while another thread scores films on the same model: is it right, and how long does it wait?

The app holds one model object for every session and for a site validation's thread; every forward pass that reads
the model through hooks holds that model's lock (covid_core.models.forward_lock). This makes the Diagnose path's
heatmap (covid_core.case.explain_case, with the faithfulness metric) of one film: alone, the baseline, then while a
second thread scores batches of other films as a site validation does (covid_core.inference.score_pixels, 64 films
a batch). It prints how many heatmaps differed from the one made alone (any is a bug) and the heatmap's time in
each case, with the ratio.

    python bench/shared_model.py [--model weights/resnet18.pt] [--runs 10] [--image PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_latency import xray_like_jpeg_512  # noqa: E402 (bench/ on the path)


def main() -> int:
    from covid_core.case import explain_case, open_case
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import score_pixels

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="weights/resnet18.pt")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--image", default=None, help="a film (default: a synthetic 512x512 X-ray-like JPEG)")
    args = ap.parse_args()
    classifier = load_classifier(args.model)
    case = open_case(xray_like_jpeg_512(args.image), "film.jpg", classifier)
    call = case.prediction.call
    size = classifier.preprocess.image_size
    others = (np.random.default_rng(1).random((64, size, size)) * 255).astype(np.uint8)

    def heatmap():
        start = time.perf_counter()
        e = explain_case(classifier, case, target_class=call)
        return e, time.perf_counter() - start

    reference, _ = heatmap()  # also warms up
    alone = [heatmap()[1] for _ in range(args.runs)]
    stop, batches = threading.Event(), [0]

    def validation():
        while not stop.is_set():
            score_pixels(classifier, others)
            batches[0] += 1

    thread = threading.Thread(target=validation, daemon=True)
    thread.start()
    during, wrong = [], 0
    for _ in range(args.runs):
        e, seconds = heatmap()
        during.append(seconds)
        wrong += not np.allclose(e.heatmap_model, reference.heatmap_model, atol=1e-4)
    stop.set()
    thread.join()
    a, d = statistics.median(alone), statistics.median(during)
    print(f"{Path(args.model).name}, {size} px, heatmap of '{call}' with faithfulness, {args.runs} runs each")
    print(f"alone: median {a:.3f} s")
    print(f"while another thread scored {batches[0]} batches of 64 films: median {d:.3f} s ({d / a:.2f}x alone); "
          f"heatmaps that differed from the one made alone: {wrong} of {args.runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
