"""Classical filters at fixed settings against settings matched to each image's own estimated noise.

    python bench/classical_strength.py --data DATA_DIR --n 20 --size 256

The Denoise page and `denoise` give a classical filter (non-local means, Gaussian blur, median, BM3D) the settings
matched to the film's noise (covid_core.denoise.classical.matched_settings: the noise's sigma estimated from the
film's finest wavelet details, then the settings bench/denoise.py tuned on TRAIN for Gaussian sigma 15, 25 and 50,
interpolated). The baseline, run in the same process on the same noisy copies, is the fixed DEFAULTS (tuned for
moderate noise, sigma ~25), which the page used whatever the film's noise.

On a seeded subset of TEST films at --size px: for each added noise (including levels and kinds the settings were
not tuned at), the mean PSNR against the clean film of each filter both ways, and the matched settings' mean gain.
"none" adds no noise: the film as it is should come back nearly unchanged, so its PSNR is against the film itself
(it is summed up apart from the added noises).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from denoise import load_split  # noqa: E402 (bench/denoise.py: the same TEST subset loader)

from covid_core.denoise import add_noise, psnr  # noqa: E402
from covid_core.denoise.classical import DEFAULTS, FILTERS, estimate_noise_sigma, matched_settings  # noqa: E402

NOISES = (("none", 0.0), ("gaussian", 5.0), ("gaussian", 10.0), ("gaussian", 15.0), ("gaussian", 25.0),
          ("gaussian", 35.0), ("gaussian", 50.0), ("poisson", 30.0), ("poisson", 100.0), ("poisson", 300.0),
          ("speckle", 0.1))


TUNE_SIGMAS = (5.0, 10.0, 15.0, 25.0, 35.0, 50.0)


def tune_table(data: str, n: int, size: int, methods: list[str], seed: int) -> None:
    """Grid-search each filter's setting on ``n`` TRAIN films at ``size`` px for Gaussian noise of each TUNE_SIGMAS
    (bench/denoise.py's grids, BM3D's in multiples of the noise's std), and print the best as (sigma, value)
    points, the form of classical.TUNED_FOR_SIGMA."""
    from denoise import grid, tune

    films, _ = load_split(data, "train", n, seed, size)
    print(f"# tuned on {len(films)} TRAIN films at {size} px, seed {seed}")
    for method in methods:
        points = []
        for sigma in TUNE_SIGMAS:
            best = tune(method, films, "gaussian", sigma, seed)
            name, value = next(iter(best.items()))
            edge = value in (grid(method, "gaussian", sigma)[0][name], grid(method, "gaussian", sigma)[-1][name])
            points.append(f"({sigma:g}, {value}{'  # grid edge' if edge else ''})")
        print(f"{method!r}: ({name!r}, ({', '.join(points)})),", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "coronahack-mini"))
    p.add_argument("--n", type=int, default=20, help="TEST films")
    p.add_argument("--size", type=int, default=256, help="working size in px (the Denoise page's default: 256)")
    p.add_argument("--methods", default="nlm,gaussian,median", help="comma-separated; bm3d is slow")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tune", action="store_true",
                   help="instead: tune each filter on --n TRAIN films at --size px for Gaussian sigma 5-50 and print "
                        "the table (the form of covid_core.denoise.classical.TUNED_FOR_SIGMA)")
    args = p.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if args.tune:
        tune_table(args.data, args.n, args.size, methods, args.seed)
        return 0
    clean, _ = load_split(args.data, "test", args.n, args.seed, args.size)
    print(f"# {len(clean)} TEST films at {args.size} px, seed {args.seed}, load average {os.getloadavg()[0]:.1f}")
    print("| noise | estimated sigma (mean) | method | fixed DEFAULTS PSNR dB | matched PSNR dB | gain dB | matched "
          "settings (first film) |")
    print("|---|---|---|---|---|---|---|")
    gains = {m: [] for m in methods}
    for kind, level in NOISES:
        noisy = [c if kind == "none" else add_noise(c, kind, level, seed=args.seed * 100_003 + i)
                 for i, c in enumerate(clean)]
        sigmas = [estimate_noise_sigma(x) for x in noisy]
        for method in methods:
            fixed = [psnr(c, FILTERS[method](x, **DEFAULTS[method])) for c, x in zip(clean, noisy)]
            matched = [psnr(c, FILTERS[method](x, **matched_settings(method, x)[0])) for c, x in zip(clean, noisy)]
            gain = float(np.mean(matched) - np.mean(fixed))
            gains[method].append(gain)
            name = "none" if kind == "none" else f"{kind} {level:g}"
            print(f"| {name} | {np.mean(sigmas):.1f} | {method} | {np.mean(fixed):.2f} | {np.mean(matched):.2f} | "
                  f"{gain:+.2f} | {matched_settings(method, noisy[0])[0]} |", flush=True)
    print()
    for method, values in gains.items():
        added = [(f"{kind} {level:g}", g) for (kind, level), g in zip(NOISES, values) if kind != "none"]
        worse = [name for name, g in added if g < 0]
        print(f"{method}: matched minus fixed, mean over the {len(added)} added noises "
              f"{np.mean([g for _, g in added]):+.2f} dB, range {min(g for _, g in added):+.2f} to "
              f"{max(g for _, g in added):+.2f}; worse at: {', '.join(worse) or 'none'}; on the films as they are "
              f"(against themselves) {values[0]:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
