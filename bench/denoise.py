"""Denoising benchmark: method x noise -> mean PSNR, mean SSIM, ms per 512x512 image (CPU).

    OMP_NUM_THREADS=1 nice -n 10 python bench/denoise.py --n 50 --dip-n 10

On a fixed seeded subset of TEST (--n images at 512x512); classical methods are tuned per
noise level on --tune-n TRAIN images (centre crops) and the chosen settings are printed.
DIP runs on --dip-n TEST images downscaled to 256x256 at Gaussian sigma 25, against tuned NLM
and the DAE on the same images, with PSNR against steps and wall time. Last: AUC of a
classifier (--classifier) on noisy TEST with and without the DAE in front.
Timings depend on the machine's load: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]

from covid_core.cache import load_or_build
from covid_core.datasets import load_dataset
from covid_core.denoise import add_noise, load_dae, psnr, run_dip, ssim
from covid_core.denoise.classical import FILTERS
from covid_core.denoise.margins import CLASSICAL_DENOISERS, DAE_ON_BM3D_IMAGES
from covid_core.preprocess import PreprocessConfig

NOISES = (("gaussian", 15.0), ("gaussian", 25.0), ("gaussian", 50.0), ("poisson", 30.0))
GRIDS = {
    "gaussian": ("sigma", [0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0]),
    "median": ("ksize", [3, 5, 7, 9, 11, 13, 15]),
    "nlm": ("h", [5, 8, 11, 14, 18, 22, 27, 33, 40, 50, 60, 75, 90]),
    "bm3d": ("sigma", [0.8, 1.0, 1.3, 1.7]),  # times the noise's nominal std (see nominal_std)
}


def nominal_std(kind: str, level: float) -> float:
    """Noise std on the 0-1 scale: sigma/255, or sqrt(0.5 / photons) for Poisson at mid grey."""
    return level / 255.0 if kind == "gaussian" else float(np.sqrt(0.5 / level))


def grid(method: str, kind: str, level: float) -> list[dict]:
    name, values = GRIDS[method]
    if method == "bm3d":
        return [{name: round(v * nominal_std(kind, level), 4)} for v in values]
    return [{name: v} for v in values]


def noisy_copy(clean: np.ndarray, kind: str, level: float, index: int, seed: int) -> np.ndarray:
    return add_noise(clean, kind, level, seed=seed * 100_003 + index)


def tune(method: str, images: list[np.ndarray], kind: str, level: float, seed: int) -> dict:
    """The grid setting with the best mean PSNR on ``images`` (TRAIN crops)."""
    noisy = [noisy_copy(c, kind, level, i, seed + 1) for i, c in enumerate(images)]
    scores = [(np.mean([psnr(c, FILTERS[method](n, **p)) for c, n in zip(images, noisy)]), i)
              for i, p in enumerate(grid(method, kind, level))]
    return grid(method, kind, level)[max(scores)[1]]


def evaluate(fn, clean: list[np.ndarray], noisy: list[np.ndarray]) -> dict:
    p, s, ms = [], [], []
    for c, n in zip(clean, noisy):
        t = time.perf_counter()
        out = fn(n)
        ms.append(1000 * (time.perf_counter() - t))
        p.append(psnr(c, out))
        s.append(ssim(c, out))
    # Per-image PSNRs too: the card compares two methods image by image (a paired difference with its interval).
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), "ms": float(np.median(ms)), "n": len(clean),
            "psnr_each": [round(float(v), 4) for v in p]}


def load_split(data: str, split: str, n: int, seed: int, size: int) -> tuple[list[np.ndarray], object]:
    table = load_dataset(data).table
    rows = table[table["split"] == split]
    rows = rows.iloc[np.random.default_rng(seed).permutation(len(rows))[:n]]
    u8 = load_or_build(rows["path"].tolist(), PreprocessConfig(image_size=size), progress=False)
    return [np.asarray(x, np.float32) / 255.0 for x in u8], rows


def centre(img: np.ndarray, side: int) -> np.ndarray:
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    return img[top:top + side, left:left + side]


def print_table(rows: list[dict]) -> None:
    print("| method | noise | PSNR dB | SSIM | ms / image | n | settings |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['noise']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['ms']:.0f} | {r['n']} "
              f"| {r.get('settings', '')} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "coronahack-mini"))
    p.add_argument("--n", type=int, default=50, help="TEST images at 512x512")
    p.add_argument("--bm3d-n", type=int, default=None, help="TEST images for BM3D (slow); default --n")
    p.add_argument("--tune-n", type=int, default=3, help="TRAIN images for tuning (192x192 centre crops)")
    p.add_argument("--dip-n", type=int, default=10, help="TEST images for DIP at 256x256 (0 skips DIP)")
    p.add_argument("--dip-max-iters", type=int, default=1200)
    p.add_argument("--dip-time-budget", type=float, default=110.0)
    p.add_argument("--dae", default=str(REPO / "weights" / "dae.pt"))
    p.add_argument("--classifier", default=str(REPO / "weights" / "resnet18.pt"))
    p.add_argument("--auc-n", type=int, default=None, help="TEST images for the AUC section (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default="table,dip,auc",
                   help="comma-separated parts to run: table (method x noise), dip, auc")
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    p.add_argument("--record", action="store_true",
                   help="store the method x noise table in the --dae checkpoint (key test_benchmark), rewritten "
                        "atomically, so `python -m covid_core model-card` reports it in the DAE's card")
    args = p.parse_args()
    if args.record and "table" not in args.parts.split(","):
        p.error("--record stores the method x noise table: include 'table' in --parts")

    import torch

    print(f"# denoising benchmark: torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    t_start = time.time()
    parts = set(args.parts.split(","))
    clean, _ = load_split(args.data, "test", args.n, args.seed, 512)
    tune_imgs = [centre(x, 192) for x in load_split(args.data, "train", args.tune_n, args.seed, 512)[0]]
    dae = None
    if parts & {"table", "auc"}:
        dae = load_dae(args.dae)
        print(f"DAE: {args.dae} ({sum(t.numel() for t in dae.model.parameters())} parameters, "
              f"trained {dae.metadata.get('training_time_s')} s)")
    results, tuned = [], {}
    for kind, level in NOISES if "table" in parts else ():
        name = f"{kind} {level:g}" if kind == "gaussian" else f"poisson {level:g} photons"
        noisy = [noisy_copy(c, kind, level, i, args.seed) for i, c in enumerate(clean)]
        results.append({"method": "noisy input", "noise": name, **evaluate(lambda x: x, clean, noisy)})
        for method in CLASSICAL_DENOISERS:
            settings = tune(method, tune_imgs, kind, level, args.seed)
            tuned[f"{method} @ {name}"] = settings
            k = args.bm3d_n if method == "bm3d" and args.bm3d_n else len(clean)
            res = evaluate(lambda x, m=method, s=settings: FILTERS[m](x, **s), clean[:k], noisy[:k])
            results.append({"method": method, "noise": name, "settings": settings, **res})
            print(f"  {name}: {method} {settings} -> {res['psnr']:.2f} dB", flush=True)
        res = evaluate(dae.denoise, clean, noisy)
        results.append({"method": "dae", "noise": name, **res})
        print(f"  {name}: dae -> {res['psnr']:.2f} dB", flush=True)
        if args.bm3d_n and args.bm3d_n < len(clean):
            # BM3D ran on the first --bm3d-n images only: compare the DAE on exactly those too.
            k = args.bm3d_n
            res = evaluate(dae.denoise, clean[:k], noisy[:k])
            results.append({"method": DAE_ON_BM3D_IMAGES, "noise": name, **res})
            print(f"  {name}: dae on the {k} BM3D images -> {res['psnr']:.2f} dB", flush=True)
    if results:
        print("\n## Method x noise on TEST 512x512 (classical methods tuned per noise level on TRAIN)")
        print_table(results)
    dip_report = auc_report = None
    if args.dip_n > 0 and "dip" in parts:
        dip_report = bench_dip(args, clean[: args.dip_n], tune_imgs)
    if "auc" in parts:
        auc_report = bench_auc(args, dae)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}; total {time.time() - t_start:.0f} s")
    if args.record:
        record_in_checkpoint(args.dae, results, tuned)
    if args.json:
        Path(args.json).write_text(json.dumps({"table": results, "tuned": tuned, "dip": dip_report,
                                               "auc": auc_report}, indent=1))
    return 0


def record_in_checkpoint(path: str, rows: list[dict], tuned: dict) -> None:
    """Store the table in the DAE checkpoint, so its generated model card reports measured figures."""
    from covid_core.checkpoint import atomic_save, load_checkpoint_dict

    ckpt = load_checkpoint_dict(path)
    ckpt["test_benchmark"] = {"command": "python bench/denoise.py " + " ".join(sys.argv[1:]),
                              "measured": time.strftime("%Y-%m-%d"), "rows": rows, "tuned": tuned}
    atomic_save(ckpt, path)
    print(f"recorded the table in {path} (key test_benchmark); regenerate its card with "
          f"`python -m covid_core model-card {path}`")


def bench_dip(args, clean512: list[np.ndarray], tune_imgs) -> dict:
    kind, level = "gaussian", 25.0
    clean = [cv2.resize(c, (256, 256), interpolation=cv2.INTER_AREA) for c in clean512]
    noisy = [noisy_copy(c, kind, level, i, args.seed) for i, c in enumerate(clean)]
    h = tune("nlm", [cv2.resize(t, (96, 96), interpolation=cv2.INTER_AREA) for t in tune_imgs] + tune_imgs,
             kind, level, args.seed)
    rows = [{"method": "noisy input", **evaluate(lambda x: x, clean, noisy)},
            {"method": "nlm", "settings": h, **evaluate(lambda x: FILTERS["nlm"](x, **h), clean, noisy)}]
    runs = []
    for i, (c, n) in enumerate(zip(clean, noisy)):
        r = run_dip(n, max_iters=args.dip_max_iters, time_budget_s=args.dip_time_budget, seed=args.seed,
                    clean=c, preview_every=50)
        runs.append({"psnr": psnr(c, r.image), "ssim": ssim(c, r.image), "iterations": r.iterations,
                     "best_iteration": r.best_iteration, "stopped": r.stopped_reason,
                     "seconds": r.history[-1]["seconds"],
                     "curve": [(h_["iteration"], round(h_["seconds"], 1), round(h_["psnr"], 2))
                               for h_ in r.history if "psnr" in h_]})
        print(f"  DIP image {i}: {runs[-1]['psnr']:.2f} dB, {r.stopped_reason} at {r.iterations} "
              f"(estimate from step {r.best_iteration}), {runs[-1]['seconds']:.0f} s", flush=True)
    rows.append({"method": "dip", "psnr": float(np.mean([r["psnr"] for r in runs])),
                 "ssim": float(np.mean([r["ssim"] for r in runs])),
                 "ms": float(np.median([1000 * r["seconds"] for r in runs])), "n": len(runs)})
    print(f"\n## DIP vs tuned NLM, TEST at 256x256, Gaussian sigma 25 ({len(runs)} images)")
    print("| method | PSNR dB | SSIM | ms / image | settings |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['ms']:.0f} | {r.get('settings', '')} |")
    steps = sorted({s for r in runs for s, _, _ in r["curve"]})
    print("\nDIP PSNR (of the running average) against steps and wall time, mean over images still running:")
    print("| step | mean s | mean PSNR dB | images |")
    print("|---|---|---|---|")
    for s in steps[::2]:
        pts = [(t, q) for r in runs for st, t, q in r["curve"] if st == s]
        print(f"| {s} | {np.mean([t for t, _ in pts]):.0f} | {np.mean([q for _, q in pts]):.2f} | {len(pts)} |")
    return {"rows": rows, "runs": runs}


def bench_auc(args, dae) -> dict | None:
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import predict_pixels
    from covid_core.metrics import classification_metrics
    from covid_core.preprocess import prepare_pixels

    if not Path(args.classifier).is_file():
        print(f"\n## Does denoising help diagnosis?\nskipped: no classifier at {args.classifier} "
              "(pass --classifier PATH)")
        return None
    clf = load_classifier(args.classifier)
    table = load_dataset(args.data).for_target(clf.target)
    rows = table[table["split"] == "test"]
    if args.auc_n:
        rows = rows.iloc[np.random.default_rng(args.seed).permutation(len(rows))[: args.auc_n]]
    u8 = load_or_build(rows["path"].tolist(), PreprocessConfig(image_size=512), progress=False)
    labels = rows["label_idx"].to_numpy()
    report = {}
    print(f"\n## Does denoising help diagnosis? {Path(args.classifier).name} on {len(rows)} TEST images, macro AUC")
    print("| noise | clean | noisy | noisy + DAE |")
    print("|---|---|---|---|")

    def auc(images):
        pix = np.stack([prepare_pixels(x, clf.preprocess)[0] for x in images])
        return classification_metrics(labels, predict_pixels(clf, pix)[0], clf.classes)["macro_auc"]

    clean = [np.asarray(x, np.float32) / 255.0 for x in u8]
    clean_auc = auc(clean)
    for kind, level in (("gaussian", 25.0), ("poisson", 30.0)):
        noisy = [noisy_copy(c, kind, level, i, args.seed) for i, c in enumerate(clean)]
        row = {"clean": clean_auc, "noisy": auc(noisy), "dae": auc([dae.denoise(x) for x in noisy])}
        report[f"{kind} {level:g}"] = row
        print(f"| {kind} {level:g} | {row['clean']:.4f} | {row['noisy']:.4f} | {row['dae']:.4f} |", flush=True)
    return report


if __name__ == "__main__":
    sys.exit(main())
