"""Does "is anything wrong", learned inside one hospital, carry over to adults from hospitals it never saw?

The COVID-19 verdict fails at a new hospital because every COVID-19 film comes from the COVID-19 collections and
nearly every adult normal from NIH, so "adult and not from NIH" passes for COVID-19. A normal/pneumonia model
trained only on a source that holds both answers (default: Kermany's children, the only such source besides
NIH) cannot read the answer from the source. This script trains one (``--target pneumonia``, the shipped recipe
otherwise) on that source's films alone, then scores every film of the other sources, none of which it saw, with
p(abnormal) = 1 - p(normal), and prints:

- within each unseen source, normal vs pneumonia: AUC (that hospital's own question);
- adult normals vs COVID-19 films, all and TEST only: AUC (the new-hospital goal's question, both groups from
  sources the model never saw);
- adult non-COVID pneumonias vs COVID-19 films: AUC;
- the mean p(abnormal) of each source and finding.

The training copy (that source's films and metadata rows) goes to a temporary folder, deleted at the end.

    python bench/one_source_abnormality.py --data DATA_DIR [--source kermany] [--seed 0] \\
        [--image-size 160] [--epochs 12] [--keep P.pt] \\
        [--checkpoint P.pt (trained on --source's films: score it instead of training)]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = Path("Coronahack-Chest-XRay-Dataset") / "Coronahack-Chest-XRay-Dataset"


def one_source_copy(data: Path, source: str, out: Path) -> int:
    """A coronahack-layout copy of ``data`` holding only ``source``'s films (both splits); their number."""
    import pandas as pd

    meta = pd.read_csv(data / "Chest_Xray_Corona_Metadata.csv", keep_default_na=False)
    prov = pd.read_csv(data / "provenance.csv", keep_default_na=False)
    keep = set(prov.loc[prov["source"] == source, "X_ray_image_name"])
    if not keep:
        raise SystemExit(f"no film of source {source!r}; the sources are: {', '.join(sorted(set(prov['source'])))}")
    meta = meta[meta["X_ray_image_name"].isin(keep)]
    for split in ("train", "test"):
        (out / IMAGES / split).mkdir(parents=True, exist_ok=True)
    for name, split in zip(meta["X_ray_image_name"], meta["Dataset_type"].str.lower()):
        shutil.copyfile(data / IMAGES / split / name, out / IMAGES / split / name)
    meta.to_csv(out / "Chest_Xray_Corona_Metadata.csv", index=False)
    prov[prov["X_ray_image_name"].isin(keep)].to_csv(out / "provenance.csv", index=False)
    return len(meta)


def report(checkpoint: str, data: str, trained_on: str) -> None:
    from covid_core.commands.evaluate import evaluate_checkpoint
    from covid_core.metrics import binary_auc

    metrics, table, probs = evaluate_checkpoint(checkpoint, data, split="all", progress=False)
    classes = metrics["classes"]  # the checkpoint's, in the order of the probability columns
    abnormal = 1 - probs[:, classes.index("normal")]
    src, finding, split = (table[c].astype(str).to_numpy() for c in ("source", "finding", "split"))
    unseen = src != trained_on
    adult = unseen & (src != "kermany")  # every source but Kermany's children holds adults
    covid = unseen & (finding == "covid19")
    print(f"{checkpoint}: p(abnormal) = 1 - p(normal), on sources it never saw (it was trained on {trained_on!r})")
    pairs = [(f"within {s}: normal vs pneumonia", unseen & (src == s) & (finding == "normal"),
              unseen & (src == s) & (finding == "pneumonia")) for s in sorted(set(src[unseen]))]
    pairs += [("adult normals vs COVID-19 (all)", adult & (finding == "normal"), covid),
              ("adult normals vs COVID-19 (TEST)", adult & (finding == "normal"), covid & (split == "test")),
              ("adult other pneumonias vs COVID-19 (all)", adult & (finding == "pneumonia"), covid)]
    for name, negative, positive in pairs:
        if negative.any() and positive.any():
            auc = binary_auc(np.r_[np.zeros(negative.sum()), np.ones(positive.sum())],
                             np.r_[abnormal[negative], abnormal[positive]])
            print(f"  {name}: AUC {auc:.3f} ({negative.sum()} vs {positive.sum()} films)")
    for s in sorted(set(src)):
        for f in ("normal", "pneumonia", "covid19"):
            m = (src == s) & (finding == f)
            if m.any():
                print(f"  mean p(abnormal), {s} {f}: {abnormal[m].mean():.3f} ({m.sum()} films"
                      f"{', the source it was trained on' if s == trained_on else ''})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="coronahack-mini (with provenance.csv)")
    ap.add_argument("--source", default="kermany", help="the one source to train on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--checkpoint", help="score this normal/pneumonia checkpoint, trained on --source's films "
                                         "only, instead of training one (give --source to match it)")
    ap.add_argument("--keep", help="copy the trained checkpoint here")
    args = ap.parse_args()
    data = Path(args.data)
    checkpoint = args.checkpoint
    with tempfile.TemporaryDirectory(prefix="one_source_") as work:
        work = Path(work)
        if checkpoint is None:
            n = one_source_copy(data, args.source, work / "data")
            checkpoint = str(Path(args.keep) if args.keep else work / "model.pt")
            cmd = [sys.executable, str(REPO / "train.py"), "--data", str(work / "data"), "--target", "pneumonia",
                   "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--seed", str(args.seed),
                   "--balance", "group", "--runs-dir", str(work / "runs"), "--out", checkpoint, "--quiet"]
            print(f"training on the {n} films of {args.source!r}: {' '.join(cmd[1:])}", flush=True)
            start = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=REPO)
            print(f"trained in {time.perf_counter() - start:.0f} s")
        report(checkpoint, str(data), args.source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
