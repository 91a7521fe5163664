"""Does a site's heatmap show what decided the call? The head's own map against the network's, on a site's films.

At a site whose validation fitted a head on the frozen features (the COVID-19 head of the verdict, the pneumonia
head of the call under a negative verdict), that head decides the class a reader is told, and Diagnose explains the
head's score (covid_core.explain.scores). The baseline is the map of the network's own logit for the same class,
which is what was shown before. For each film given a verdict whose call a head decides, both maps are made and the
faithfulness metric (ROAD: the 20% most highlighted pixels removed) measures the drop in the HEAD's probability of
the called class under each: a map that shows what the head uses lowers it. Also printed: the share of maps whose
drop is not above 0 (Diagnose then warns that the map does not show what the model relies on), the share of each
map's energy inside the estimated thorax, the correlation between the two maps, and on how many films the head's
map lowered the head's probability more than the network's map did.

    python bench/site_heatmap.py --model MODEL.pt --site SITE.json --films FOLDER --per-class 40

FOLDER holds one folder per class (a hospital's films, as validate-site reads them); the films are read in place.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from covid_core.explain.cam import DEFAULT_METHOD

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".bmp", ".tif", ".tiff"}


def films(folder: Path, per_class: int, seed: int) -> list[Path]:
    """At most ``per_class`` films of each class folder, a seeded draw."""
    rng, out = np.random.default_rng(seed), []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        paths = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        out += [paths[i] for i in sorted(rng.permutation(len(paths))[:per_class])]
    return out


def both_maps(classifier, case, method: str, model, score) -> dict:
    """The head's map and the network's for the case's call (``model`` and ``score``: the head that decides it, from
    ``explained_score``): each one's drop in the head's probability of the called class, its thorax share, and the
    correlation between them."""
    import torch

    from covid_core.explain import explain_pixels
    from covid_core.explain.trust import faithfulness
    from covid_core.preprocess import to_model_input

    p = case.prediction
    head, network = (explain_pixels(classifier, p.pixels_u8[None], [p.geometry], method, p.call, site_heads=heads)[0]
                     for heads in (True, False))
    x = to_model_input(p.pixels_u8[None], classifier.preprocess).to(classifier.device)
    with torch.no_grad():
        network_drop = float(faithfulness(model, x, network.heatmap_model[None], [score], model(x))[0])
    maps = [head.heatmap_model.ravel(), network.heatmap_model.ravel()]
    correlation = float(np.corrcoef(*maps)[0, 1]) if min(m.std() for m in maps) > 0 else float("nan")  # an empty map
    return {"class": p.call, "by": score.by, "head_drop": head.faithfulness, "network_drop": network_drop,
            "head_thorax": head.thorax_share, "network_thorax": network.thorax_share, "correlation": correlation,
            "empty": [not m.max() > 0 for m in maps]}


def main() -> int:
    from covid_core.case import open_case
    from covid_core.explain.explanation import class_index
    from covid_core.explain.scores import explained_score
    from covid_core.site_file import load_classifier_at_site

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--site", required=True, help="a site file made by validate-site for --model, with a head")
    ap.add_argument("--films", required=True, type=Path, help="one folder per class")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--method", default=DEFAULT_METHOD, help="a heatmap method (default: the product's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    classifier = load_classifier_at_site(args.model, site=args.site)
    rows, skipped = [], {"withheld": 0, "decided by the network": 0}
    for path in films(args.films, args.per_class, args.seed):
        case = open_case(path, path.name, classifier)
        if case.prediction.withheld:
            skipped["withheld"] += 1
            continue
        model, score = explained_score(classifier, class_index(classifier, case.prediction.call))
        if not score.by:
            skipped["decided by the network"] += 1
        else:
            rows.append(both_maps(classifier, case, args.method, model, score))
    print(f"{Path(args.model).name} at {classifier.site.name}; {len(rows)} films whose call a head decides "
          f"({', '.join(f'{n} {k}' for k, n in skipped.items())} left out); method {args.method}\n")
    print("| called class | films | head's probability drop, head map / network map (mean) | drop not above 0: "
          "head map / network map | empty maps: head / network | thorax share: head map / network map | correlation of "
          "the maps (mean, where neither is empty) | head map lowers it more |")
    print("|---|---|---|---|---|---|---|---|")
    for name in sorted({r["class"] for r in rows}):
        r = [x for x in rows if x["class"] == name]

        def mean(key):
            return float(np.mean([x[key] for x in r]))

        def not_above(key):
            return sum(x[key] <= 0 for x in r)

        empty = [sum(x["empty"][i] for x in r) for i in (0, 1)]
        both = [x["correlation"] for x in r if not np.isnan(x["correlation"])]
        correlation = float(np.mean(both)) if both else float("nan")

        print(f"| {name} | {len(r)} | {100 * mean('head_drop'):+.1f} / {100 * mean('network_drop'):+.1f} pts | "
              f"{not_above('head_drop')} / {not_above('network_drop')} of {len(r)} | {empty[0]} / {empty[1]} | "
              f"{mean('head_thorax'):.2f} / {mean('network_thorax'):.2f} | {correlation:.2f} | "
              f"{sum(x['head_drop'] > x['network_drop'] for x in r)} of {len(r)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
