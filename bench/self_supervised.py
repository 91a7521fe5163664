"""Self-supervised pretraining (SimCLR) of a classifier's backbone on the training films, without their labels.

Pretrained weights are the one lever docs/shortcuts.md could not try: no model hub is reachable here. Azizi et al.
("Big Self-Supervised Models Advance Medical Image Classification", ICCV 2021) found that contrastive pretraining
on unlabelled medical images made classifiers more robust to a shift of hospital than supervised training alone.
This pretrains the backbone on the TRAIN films a run would train on (VALIDATION and TEST films left out, and the
films of ``--holdout-source`` too, as training leaves them out), two strongly augmented views of each film drawn
together against every other film of the batch (NT-Xent loss, Chen et al., ICML 2020), then writes the backbone's
weights, which ``train.py --pretrained FILE`` starts from; the ablation bench then measures the fine-tuned model
as every other row:

    python bench/self_supervised.py --data ../shared/data/coronahack-mini --holdout-source nih \
        --epochs 60 --out runs/ssl/resnet18-simclr-without-nih.pt
    python bench/shortcut_ablation.py --data ../shared/data/coronahack-mini --rows group_without_nih \
        --image-size 160 --epochs 12 --covid-sensitivity 0.90 --work runs/ablation-ssl \
        --pretrained runs/ssl/resnet18-simclr-without-nih.pt

``--unlabelled-source S`` adds source S's TRAIN films to pretraining without their labels (what a hospital could
do with its own unlabelled films): the held-out source then stays unseen by the labelled training only.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covid_core import augment  # noqa: E402
from covid_core.models import build_model, last_linear  # noqa: E402
from covid_core.preprocess import normalize  # noqa: E402
from covid_core.training.classifier import prepare_data  # noqa: E402
from covid_core.training.config import TrainConfig  # noqa: E402
from covid_core.training.finalize import split_indices  # noqa: E402


def crop_views(x01: torch.Tensor, out: int) -> torch.Tensor:
    """A random resized crop per film (a quarter to all of its area, aspect within 3:4 to 4:3, never mirrored),
    resampled to ``out`` pixels a side, then the strong augmentation (gamma, contrast, blur, noise, erased corners)."""
    b = x01.shape[0]
    area = torch.empty(b).uniform_(0.25, 1.0)
    aspect = torch.exp(torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3)))
    sx, sy = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    tx, ty = (1 - sx) * torch.empty(b).uniform_(-1, 1), (1 - sy) * torch.empty(b).uniform_(-1, 1)
    zero = torch.zeros(b)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta, [b, 1, out, out], align_corners=False)
    return augment.augment_batch(F.grid_sample(x01, grid, align_corners=False, padding_mode="zeros"), "strong")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's partner is the other view of its film; every other view of the batch is a
    negative."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, target)


def pretraining_films(args) -> tuple[np.ndarray, object, dict]:
    """(uint8 films, PreprocessConfig, counts per source) that pretraining reads: the TRAIN films of a run with
    these settings, plus ``--unlabelled-source``'s TRAIN films."""
    config = TrainConfig(data=args.data, model=args.model, image_size=args.image_size, seed=args.seed,
                         holdout_source=args.holdout_source)
    table, images, pre, _ = prepare_data(config, progress=True)
    keep = np.zeros(len(table), dtype=bool)
    keep[split_indices(table)["train"]] = True
    if args.unlabelled_source:
        extra = TrainConfig(data=args.data, model=args.model, image_size=args.image_size, seed=args.seed)
        full, full_images, _, _ = prepare_data(extra, progress=True)
        wanted = ((full["source"] == args.unlabelled_source) & (full["split"] != "test")).to_numpy()
        images = np.concatenate([images[keep], full_images[wanted]])
        sources = np.concatenate([table["source"].to_numpy()[keep], full["source"].to_numpy()[wanted]])
    else:
        images, sources = images[keep], table["source"].to_numpy()[keep]
    names, counts = np.unique(sources.astype(str), return_counts=True)
    return np.ascontiguousarray(images), pre, dict(zip(names.tolist(), counts.tolist()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--image-size", type=int, default=160, help="the films' size in the cache (the training size)")
    p.add_argument("--view-size", type=int, default=112, help="each augmented view's side in pixels")
    p.add_argument("--holdout-source", default="", help="leave this source's films out, as training does")
    p.add_argument("--unlabelled-source", default="", help="add this source's TRAIN films, without labels")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="where the backbone's weights go (a state dict, .pt)")
    args = p.parse_args()
    torch.manual_seed(args.seed)

    images, pre, counts = pretraining_films(args)
    print(f"pretraining on {len(images)} films without labels: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    model = build_model(args.model, 3)
    if not hasattr(model, "fc"):
        p.error(f"{args.model} has no separate head to take off; pretrain a ResNet")
    width = last_linear(model).in_features
    model.fc = nn.Identity()
    projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, 128))
    params = [*model.parameters(), *projection.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(images) // args.batch_size
    if args.epochs * steps_per_epoch < 20:
        p.error(f"{len(images)} films make {steps_per_epoch} batches of {args.batch_size} an epoch: too few steps "
                "for the learning-rate schedule; use more epochs or a smaller batch")
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, pct_start=0.1,
                                                    total_steps=args.epochs * steps_per_epoch)
    films = torch.from_numpy(images)
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train(), projection.train()
        order = torch.randperm(len(films))
        losses = []
        for step in range(steps_per_epoch):
            batch = films[order[step * args.batch_size:(step + 1) * args.batch_size]][:, None].float().div_(255.0)
            v1 = normalize(crop_views(batch, args.view_size), pre)
            v2 = normalize(crop_views(batch, args.view_size), pre)
            loss = _pair_loss(model, projection, v1, v2, args.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        print(f"epoch {epoch}/{args.epochs}: loss {np.mean(losses):.3f} "
              f"(chance {math.log(2 * args.batch_size - 1):.3f}), {time.time() - started:.0f} s", flush=True)
    state = model.state_dict()  # the backbone only: the head was replaced by the identity
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    print(f"wrote {args.out} ({len(state)} tensors) after {time.time() - started:.0f} s")
    return 0


def _pair_loss(model, projection, v1, v2, temperature):
    """NT-Xent of the two views' projections, both views through the network in one batch (one set of batch-norm
    statistics, as SimCLR's global batch norm intends)."""
    z = projection(model(torch.cat([v1, v2])).flatten(1))
    return nt_xent(*z.chunk(2), temperature)


if __name__ == "__main__":
    raise SystemExit(main())
