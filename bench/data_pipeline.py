"""Benchmark the data path, training throughput and predict latency (issue 2).

Run:  python bench/data_pipeline.py [--data ../shared/data/coronahack-mini] [--n 400] [--steps 12]

(a) images/s delivered by our loader (decoded once into the uint8 memmap cache, epochs 2+)
    against a plain ImageFolder-style loop that opens, decodes and transforms with PIL every epoch;
(b) end-to-end training images/s for cnn and resnet18 with both loaders, and the share of each step
    spent waiting for data;
(c) batch-1 CPU latency of predict for one 512x512 image, split into decode, preprocess and model.
All figures come from this one run on the same images; ratios are against the baseline measured here.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


from covid_core.cache import load_or_build
from covid_core.datasets import load_dataset
from covid_core.decode import decode_image
from covid_core.models import build_model
from covid_core.preprocess import PreprocessConfig, normalize, prepare_pixels, to_model_input
from covid_core.training import CachedXrays, augment_batch


class PilFolderDataset(Dataset):
    """The baseline: what a torchvision ImageFolder + transforms pipeline does every epoch."""

    def __init__(self, paths, labels, size):
        from torchvision import transforms

        self.paths, self.labels = paths, labels
        self.transform = transforms.Compose([
            transforms.Grayscale(), transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as img:
            return (self.transform(img.convert("RGB")) * 255).to(torch.uint8), int(self.labels[i])


def loader_rate(loader, epochs=2, augment=False) -> float:
    """images/s of the last epoch (the first one is a warm-up, as for the cache); with ``augment``
    each batch also goes through the training step's batched augmentation."""
    rate = 0.0
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for x, *_ in loader:
            if augment:
                augment_batch(x.float().div_(255.0))
            n += len(x)
        rate = n / (time.perf_counter() - start)
    return rate


def train_rate(model_name, loader, size, steps) -> tuple[float, float]:
    """(images/s, share of time waiting for data) over ``steps`` training steps after 2 warm-up steps."""
    torch.manual_seed(0)
    model = build_model(model_name, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    cfg = PreprocessConfig(image_size=size)
    loss_fn = torch.nn.CrossEntropyLoss()
    waited = total = 0.0
    n = 0
    it = iter(loader)
    for step in range(steps + 2):
        t0 = time.perf_counter()
        try:
            x, y, *_ = next(it)
        except StopIteration:
            it = iter(loader)
            x, y, *_ = next(it)
        t1 = time.perf_counter()
        x = normalize(augment_batch(x.float().div_(255.0)), cfg).contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if step >= 2:
            waited += t1 - t0
            total += t2 - t0
            n += len(y)
    return n / total, waited / total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/coronahack-mini"))
    p.add_argument("--n", type=int, default=400, help="TRAIN images used")
    p.add_argument("--size", type=int, default=128, help="model input size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=12, help="training steps timed per model and loader")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for both loaders")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    table = load_dataset(args.data).for_target("3class")
    table = table[table.split == "train"].sample(n=min(args.n, len(table)), random_state=0)
    paths, labels = table["path"].tolist(), table["label_idx"].to_numpy()
    cfg = PreprocessConfig(image_size=args.size)

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        images = load_or_build(paths, cfg, folder=Path(cache), progress=False)
        build_s = time.perf_counter() - t0
        ours = DataLoader(CachedXrays(images, np.arange(len(paths)), labels),
                          batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
        base = DataLoader(PilFolderDataset(paths, labels, args.size), batch_size=args.batch_size, shuffle=True,
                          num_workers=args.workers)
        r_base = loader_rate(base)
        r_ours = loader_rate(ours, augment=True)
        r_plain = loader_rate(ours)
        print(f"\n(a) data path, {len(paths)} images at {args.size}px, epoch 2 ({args.workers} workers)")
        print(f"    cache build (first epoch, 2 processes): {build_s:.1f} s = {len(paths) / build_s:.0f} img/s")
        print(f"    baseline PIL decode+transform every epoch: {r_base:8.0f} img/s")
        print(f"    ours, cached + batched augmentation:       {r_ours:8.0f} img/s   ratio {r_ours / r_base:.1f}x")
        print(f"    ours, cached, no augmentation:             {r_plain:8.0f} img/s   ratio {r_plain / r_base:.1f}x")

        print(f"\n(b) training throughput, batch {args.batch_size}, {args.steps} timed steps")
        for name in ("cnn", "resnet18"):
            for label, loader in (("baseline", base), ("ours", ours)):
                rate, wait = train_rate(name, loader, args.size, args.steps)
                print(f"    {name:9s} {label:9s} {rate:6.1f} img/s   waiting for data {100 * wait:5.1f}% of each step")

    print("\n(c) batch-1 predict latency for one 512x512 image (median of 20)")
    data = Path(paths[0]).read_bytes()
    for name, size in (("cnn", 128), ("resnet18", 224), ("resnet18", 128)):
        model = build_model(name, 3).eval()
        c = PreprocessConfig(image_size=size)
        times = []
        for _ in range(22):
            t0 = time.perf_counter()
            img = decode_image(data, "x.jpg")
            t1 = time.perf_counter()
            x = to_model_input(prepare_pixels(img.pixels, c)[0], c)
            t2 = time.perf_counter()
            with torch.no_grad():
                model(x)
            times.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
        med = [1000 * statistics.median(t[i] for t in times[2:]) for i in range(3)]
        print(f"    {name:9s} {size}px: decode {med[0]:.1f} ms, preprocess {med[1]:.1f} ms, "
              f"model {med[2]:.1f} ms, total {sum(med):.1f} ms")


if __name__ == "__main__":
    main()
