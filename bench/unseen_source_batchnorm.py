"""Does re-estimating batch-norm statistics on an unseen hospital's unlabelled films (AdaBN) rescue a model?

Takes a leave-one-source-out checkpoint (made by ``bench/shortcut_ablation.py`` with a ``*_without_<source>``
row) and scores that source's TRAIN films, which the model never saw, twice: as trained, and after every
batch-norm layer's running mean and variance were recomputed from those same films without their labels (Li et
al., "Revisiting batch normalization for practical domain adaptation", 2016). This uses the new hospital's
films, not its labels, so it is what a site could do with an unlabelled folder.

After adaptation the familiarity reference (fitted on the unadapted features) no longer applies, so the adapted
row withholds nothing: its "wrong COVID-19 verdict" is every positive. The plain row is printed both ways.

    python bench/unseen_source_batchnorm.py --data DATA_DIR --source nih \\
        --checkpoint runs/ablation-160/resnet18-160-12-s0-group_without_nih.pt
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from shortcut_ablation import not_held_out, print_table, unseen_films, verdict_figures


def adapt_batchnorm(model: torch.nn.Module, images: np.ndarray, preprocess, batch_size: int = 64) -> int:
    """Recompute every batch-norm layer's running statistics from ``images`` (cumulative average over all of
    them, no gradients, weights unchanged); returns the number of layers adapted."""
    from covid_core.preprocess import to_model_input

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every film counts the same
    model.train()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            model(to_model_input(np.asarray(images[i:i + batch_size]), preprocess))
    model.eval()
    return len(layers)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--source", required=True, help="the source the checkpoint was trained without (nih, kermany)")
    p.add_argument("--checkpoint", required=True)
    args = p.parse_args()

    from covid_core.checkpoint import load_classifier

    torch.manual_seed(0)
    clf = load_classifier(args.checkpoint)
    problem = not_held_out(clf, args.checkpoint, args.source)
    if problem:
        p.error(problem)
    images, labels = unseen_films(clf, args.data, args.source)
    rows = {"as trained, product view (familiarity check on)": verdict_figures(clf, images, labels),
            "as trained, nothing withheld": verdict_figures(clf, images, labels, familiarity=False)}
    n_layers = adapt_batchnorm(clf.model, images, clf.preprocess)
    rows[f"AdaBN ({n_layers} layers re-estimated), nothing withheld"] = verdict_figures(clf, images, labels,
                                                                                      familiarity=False)
    print(f"{args.checkpoint}: {len(labels)} unseen {args.source} TRAIN films")
    print_table(rows, "row", {"normal vs pneumonia AUC": "unseen_normal_vs_pneumonia",
                              "normals most probably COVID-19": "unseen_normals_called_covid",
                              "withheld": "unseen_withheld", "wrong COVID-19 verdict": "unseen_wrong_positive"})
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
