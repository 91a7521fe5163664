"""Which heatmap shows what the model uses? Grad-CAM family methods and target layers, on labelled films.

For every method (and every target layer asked for), each film's most probable class is explained through the
product's own path (covid_core.explain.explain_pixels, the network's own logit; Diagnose explains the call's class,
the same one unless the COVID-19 threshold decides otherwise), and the bench prints, per method and layer:

- the map's grid: the target layer's spatial size at the model's input size (a 5x5 grid is upsampled to the film,
  so it can only point at a fifth of the chest at a time);
- MoRF: the drop in the explained class's probability when the 20% MOST highlighted pixels are removed (ROAD's noisy
  linear imputation, Rong et al. 2022): the product's faithfulness figure; higher is better;
- LeRF: the drop when the 20% LEAST highlighted pixels are removed; near 0 is better (the map left out what the
  model does not use);
- MoRF - LeRF (twice ROAD's combined figure at this one share), which a map cannot raise by pointing at any large
  region;
- the share of films whose MoRF drop is not above 0 (Diagnose then says the heatmap does not show what the model
  relies on), the mean share of the map's energy inside the estimated thorax and on the border band;
- seconds per film for the map alone, and with both ROAD figures;
- then, by predicted class, the films, their mean MoRF drop and the share with no drop.

ROAD fills removed pixels with noise; both figures use a fixed seed, so runs on the same films agree.

    python bench/heatmap_methods.py --model weights/resnet18.pt --data DATA_DIR --per-class 1000 \
        --layers layer4.1 layer3.1 layer2.1

"registry" (the default layer) is the model registry's ``heatmap_layer``; a dotted path names another module.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from covid_core.checkpoint import load_classifier
from covid_core.datasets import load_dataset
from covid_core.decode import decode_image
from covid_core.explain import CAM_METHODS, explain_pixels
from covid_core.explain.explanation import BATCH_SIZE
from covid_core.explain.scores import ExplainedScore
from covid_core.explain.trust import REMOVED_PERCENT
from covid_core.preprocess import prepare_pixels, to_model_input

REGISTRY = "registry"


def sample_films(data_dir: str, target: str, split: str, per_class: int, seed: int) -> list[str]:
    """At most ``per_class`` films of each class of ``split``, a seeded draw, in path order."""
    table = load_dataset(data_dir).for_target(target)
    rows = table[table["split"] == split]
    rng, paths = np.random.default_rng(seed), []
    for _, group in sorted(rows.groupby("label")):
        names = sorted(group["path"])
        paths += [names[i] for i in sorted(rng.permutation(len(names))[:per_class])]
    return paths


def with_layer(classifier, layer: str):
    """The classifier with its heatmap layer replaced by the submodule named ``layer`` (dotted path)."""
    if layer == REGISTRY:
        return classifier
    classifier.model.get_submodule(layer)  # raises AttributeError naming the path when there is no such module
    spec = dataclasses.replace(classifier.spec, heatmap_layer=lambda m: m.get_submodule(layer))
    return dataclasses.replace(classifier, spec=spec)


def grid_of(classifier) -> str:
    """The target layer's spatial size at the model's input size, e.g. '5x5'."""
    size = classifier.preprocess.image_size
    seen = {}

    def keep_shape(module, inputs, output):  # returns None: the output is left as it is
        seen["shape"] = tuple(output.shape[-2:])

    handle = classifier.spec.heatmap_layer(classifier.model).register_forward_hook(keep_shape)
    try:
        with torch.no_grad():
            classifier.model(torch.zeros(1, 1, size, size, device=classifier.device))
    finally:
        handle.remove()
    return "x".join(map(str, seen["shape"]))


def least_relevant_drop(classifier, pixels: np.ndarray, cams: np.ndarray, classes: list[int]) -> np.ndarray:
    """ROAD LeRF per film: the drop in the explained class's probability with the least highlighted pixels
    removed. pixels: uint8 NxSxS; cams: float32 NxSxS; classes: the explained class index of each film."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst

    # The package keeps, of 1 - cam, the pixels below this percentile: 100 - p removes the p% least highlighted.
    metric = ROADLeastRelevantFirst(percentile=100 - REMOVED_PERCENT)
    jitter = np.random.default_rng(0).random(cams.shape, dtype=np.float32) * 1e-6  # as trust.faithfulness
    n, out = len(classifier.classes), []
    for start in range(0, len(pixels), BATCH_SIZE):
        x = to_model_input(pixels[start:start + BATCH_SIZE], classifier.preprocess).to(classifier.device)
        scores = [ExplainedScore(c, n, classifier.scoring_temperature) for c in classes[start:start + BATCH_SIZE]]
        with torch.no_grad():
            before = [s.probability(o).item() for s, o in zip(scores, classifier.model(x))]
        torch.manual_seed(0)
        after = metric(x, cams[start:start + BATCH_SIZE] + jitter[start:start + BATCH_SIZE],
                       [s.probability for s in scores], classifier.model, return_diff=False)
        out += list(np.asarray(before) - np.asarray(after).reshape(-1))
    return np.asarray(out, np.float32)


def measure(classifier, pixels: np.ndarray, geometries: list, method: str) -> dict:
    """One row: the method's figures over the films (see the module doc)."""
    start = time.perf_counter()
    explain_pixels(classifier, pixels, geometries, method, with_faithfulness=False, site_heads=False)
    map_s = (time.perf_counter() - start) / len(pixels)
    torch.manual_seed(0)
    found = explain_pixels(classifier, pixels, geometries, method, with_faithfulness=True, site_heads=False)
    classes = [classifier.classes.index(e.target_class) for e in found]
    cams = np.stack([e.heatmap_model for e in found])
    lerf = least_relevant_drop(classifier, pixels, cams, classes)
    morf = np.array([e.faithfulness for e in found], np.float32)
    by_class = {c: (int(np.sum(picked)), float(morf[picked].mean()), float(np.mean(morf[picked] <= 0)))
                for c in classifier.classes if (picked := np.array([e.target_class == c for e in found])).any()}
    return {"by_class": by_class,
            "morf": float(morf.mean()), "lerf": float(lerf.mean()), "combined": float((morf - lerf).mean()),
            "no_drop": float(np.mean(morf <= 0)),
            "empty": float(np.mean([not e.heatmap_model.max() > 0 for e in found])),
            "thorax": float(np.mean([e.thorax_share for e in found])),
            "border": float(np.mean([e.border_share for e in found])),
            "map_s": map_s, "total_s": (time.perf_counter() - start) / len(pixels)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="classifier checkpoint")
    parser.add_argument("--data", required=True, help="labelled data set (any layout covid_core reads)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-class", type=int, default=40, help="films drawn per class (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=[m for m in CAM_METHODS if m != "scorecam"],
                        choices=CAM_METHODS, help="scorecam costs one forward pass per channel: ask for it")
    parser.add_argument("--layers", nargs="+", default=[REGISTRY],
                        help=f"target layers: '{REGISTRY}' (the model registry's heatmap layer) or dotted module "
                             "paths (layer3.1)")
    args = parser.parse_args()
    if args.per_class < 1:
        parser.error("--per-class must be at least 1")
    torch.set_grad_enabled(True)
    classifier = load_classifier(args.model)
    try:
        variants = [(layer, with_layer(classifier, layer)) for layer in args.layers]
    except AttributeError as error:
        parser.error(f"--layers: {error}")
    paths = sample_films(args.data, classifier.target, args.split, args.per_class, args.seed)
    prepared = [prepare_pixels(decode_image(p).pixels, classifier.preprocess) for p in paths]
    pixels, geometries = np.stack([p for p, _ in prepared]), [g for _, g in prepared]
    print(f"{args.model}: {len(paths)} {args.split} films (at most {args.per_class} per class, seed {args.seed}); "
          f"each film's predicted class explained; ROAD removes {REMOVED_PERCENT}% of the pixels")
    print("| layer (grid) | method | MoRF drop | LeRF drop | MoRF - LeRF | no drop | empty | thorax share | "
          "border share | s/film map | s/film with ROAD |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    by_class = []
    for layer, variant in variants:
        grid = grid_of(variant)
        for method in args.methods:
            row = measure(variant, pixels, geometries, method)
            print(f"| {layer} ({grid}) | {method} | {row['morf']:+.3f} | {row['lerf']:+.3f} | {row['combined']:+.3f} | "
                  f"{row['no_drop']:.1%} | {row['empty']:.1%} | {row['thorax']:.2f} | {row['border']:.2f} | "
                  f"{row['map_s']:.3f} | {row['total_s']:.3f} |", flush=True)
            by_class.append((f"{layer} ({grid})", method, row["by_class"]))
    print("\nBy predicted class: films, MoRF drop (mean), no drop")
    print("| layer (grid) | method | " + " | ".join(classifier.classes) + " |")
    print("|---|---|" + "---|" * len(classifier.classes))
    for layer, method, rows in by_class:
        cells = [f"{n}, {drop:+.3f}, {none:.1%}" if (n, drop, none) != (0, 0, 0) else ""
                 for n, drop, none in (rows.get(c, (0, 0, 0)) for c in classifier.classes)]
        print(f"| {layer} | {method} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
