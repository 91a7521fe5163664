"""What the shipped classifiers cost: training time per epoch, load time, batch-1 latency, peak memory.

For every classifier in weights/ (default: cnn and resnet18) this runs, each in its own child process so
that peak memory (the child's maximum resident set size, from wait4) belongs to that measurement alone:

  train   the checkpoint's own training settings (image size, batch size, learning rate, seed) for
          --epochs epochs on --data, starting from an EMPTY decoded-image cache: "prepare" is the
          one-off decode + resize + cache build, then the wall time of each epoch (epoch 1 is the first
          epoch; epochs 2.. are "later" epochs);
  serve   load the checkpoint (first load in the process, then the median of --loads reloads), then
          --runs batch-1 passes of the Diagnose path on one 512x512 JPEG: decode + preprocess + predict
          + heatmap (after 3 warm-up passes).

The baseline in the same run is the `cnn`: every resnet18 figure is also printed as a ratio to it.

    python bench/models.py --data ../shared/data/coronahack-mini [--epochs 3] [--runs 20] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child_train(checkpoint: str, data: str, epochs: int, limit: int = 0) -> dict:
    from covid_core.checkpoint import load_checkpoint_dict
    from covid_core.training import TrainConfig, run

    cfg = dict(load_checkpoint_dict(checkpoint).get("train_config") or {})
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COVID_CORE_CACHE"] = str(Path(tmp) / "cache")  # cold cache: prepare = decode + build
        cfg.update(data=data, epochs=epochs, runs_dir=str(Path(tmp) / "runs"), run_id="bench", out=None,
                   patience=epochs + 1, limit=limit or None)
        config = TrainConfig.from_dict(cfg)
        started, rows = time.perf_counter(), []

        def on_epoch(row):
            rows.append({"seconds": row["seconds"], "at": time.perf_counter() - started,
                         "images_per_s": row.get("images_per_s"), "data_wait_share": row.get("data_wait_share")})

        run(config, on_epoch=on_epoch, progress=False)
        total = time.perf_counter() - started
    first = rows[0]
    return {"image_size": config.image_size, "batch_size": config.batch_size,
            "prepare_s": first["at"] - first["seconds"], "epoch_s": [r["seconds"] for r in rows],
            "images_per_s": [r["images_per_s"] for r in rows], "data_wait": [r["data_wait_share"] for r in rows],
            "total_s": total, "after_last_epoch_s": total - rows[-1]["at"]}


def _child_serve(checkpoint: str, runs: int, loads: int) -> dict:
    import torch

    t0 = time.perf_counter()
    from covid_core.checkpoint import load_classifier
    from covid_core.decode import decode_image
    from covid_core.explain import explain
    from covid_core.inference import predict
    import_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    clf = load_classifier(checkpoint)
    first_load = time.perf_counter() - t0
    reloads = []
    for _ in range(loads):
        t0 = time.perf_counter()
        load_classifier(checkpoint)
        reloads.append(time.perf_counter() - t0)
    from app_latency import xray_like_jpeg_512  # bench/ is on sys.path when run as a script

    data = xray_like_jpeg_512()
    parts = {"decode": [], "predict": [], "heatmap": [], "total": []}
    for i in range(runs + 3):
        t0 = time.perf_counter()
        img = decode_image(data, "x.jpg")
        t1 = time.perf_counter()
        predict(clf, img)
        t2 = time.perf_counter()
        explain(clf, img)  # the default method at the registry's heatmap layer, as Diagnose shows it
        t3 = time.perf_counter()
        if i >= 3:
            for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                parts[k].append(dt)
    return {"threads": torch.get_num_threads(), "import_s": import_s, "first_load_s": first_load,
            "reload_s": statistics.median(reloads), "size_mb": Path(checkpoint).stat().st_size / 2**20,
            "image_size": clf.preprocess.image_size,
            **{f"{k}_ms": 1000 * statistics.median(v) for k, v in parts.items()},
            "total_p95_ms": 1000 * sorted(parts["total"])[min(runs - 1, round(0.95 * (runs - 1)))]}


def _in_child(*args: str) -> tuple[dict, float]:
    """Run this script as a child with ``args``; (its JSON result, its peak RSS in MB)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True,
                            cwd=str(REPO))
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _ratio(a, b) -> str:
    return f"{a / b:6.2f}x" if a and b else "   n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "coronahack-mini"))
    ap.add_argument("--models", default="cnn,resnet18", help="names of weights/<name>.pt, baseline first")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per training measurement (>= 2)")
    ap.add_argument("--runs", type=int, default=20, help="batch-1 passes per model")
    ap.add_argument("--loads", type=int, default=5, help="checkpoint reloads per model")
    ap.add_argument("--skip-train", action="store_true", help="only load time, latency and serving memory")
    ap.add_argument("--limit", type=int, default=0, help="images per split for training (0 = all; for a smoke run)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, checkpoint, *rest = args.child
        result = _child_train(checkpoint, rest[0], int(rest[1]), int(rest[2])) if kind == "train" else \
            _child_serve(checkpoint, int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return 0

    from covid_core.model_catalog import weights_dir

    names = args.models.split(",")
    paths = {n: weights_dir() / f"{n}.pt" for n in names}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"missing checkpoints: {', '.join(missing)}")
    if not args.skip_train and not Path(args.data).is_dir():
        raise SystemExit(f"data folder {args.data} not found (or use --skip-train)")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; each measurement in its own process; "
          f"baseline = {names[0]}")
    serve, train = {}, {}
    for n in names:
        serve[n] = _in_child("serve", str(paths[n]), str(args.runs), str(args.loads))
        if not args.skip_train:
            train[n] = _in_child("train", str(paths[n]), args.data, str(args.epochs), str(args.limit))
    base = names[0]

    print(f"\nServing (batch 1, one 512x512 JPEG, {args.runs} passes after 3 warm-ups; medians)")
    print(f"{'model':10s} {'input':>6s} {'file MB':>8s} {'1st load s':>10s} {'reload s':>9s} {'decode ms':>10s} "
          f"{'predict ms':>10s} {'heatmap ms':>11s} {'total ms':>9s} {'p95 ms':>7s} {'peak MB':>8s} {'total vs base':>13s}")
    for n in names:
        s, rss = serve[n]
        print(f"{n:10s} {s['image_size']:6d} {s['size_mb']:8.1f} {s['first_load_s']:10.3f} {s['reload_s']:9.3f} "
              f"{s['decode_ms']:10.1f} {s['predict_ms']:10.1f} {s['heatmap_ms']:11.1f} {s['total_ms']:9.1f} "
              f"{s['total_p95_ms']:7.1f} {rss:8.0f} {_ratio(s['total_ms'], serve[base][0]['total_ms']):>13s}")
    if train:
        print(f"\nTraining ({args.epochs} epochs with each checkpoint's own settings, cold decoded-image cache)")
        print(f"{'model':10s} {'input':>6s} {'batch':>6s} {'prepare s':>10s} {'epoch 1 s':>10s} {'later s':>8s} "
              f"{'img/s':>7s} {'data wait':>9s} {'finalize s':>10s} {'peak MB':>8s} {'later vs base':>13s}")
        for n in names:
            t, rss = train[n]
            later = statistics.median(t["epoch_s"][1:]) if len(t["epoch_s"]) > 1 else float("nan")
            base_t = train[base][0]
            base_later = statistics.median(base_t["epoch_s"][1:]) if len(base_t["epoch_s"]) > 1 else float("nan")
            print(f"{n:10s} {t['image_size']:6d} {t['batch_size']:6d} {t['prepare_s']:10.1f} {t['epoch_s'][0]:10.1f} "
                  f"{later:8.1f} {statistics.median(t['images_per_s'][1:] or t['images_per_s']):7.1f} "
                  f"{100 * statistics.median(t['data_wait']):8.1f}% {t['after_last_epoch_s']:10.1f} {rss:8.0f} "
                  f"{_ratio(later, base_later):>13s}")
        print("prepare = decode + resize + cache build (once per data set and settings); finalize = temperature, "
              "threshold and OOD fit on validation + TEST evaluation.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
