"""Device choice and multi-process data parallelism (``torchrun``: gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes) as torchrun sets them; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def setup(device: torch.device) -> tuple[int, int]:
    """Join the process group under torchrun (sharing the CPU threads); returns (rank, world)."""
    rank, world = rank_and_world()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    return rank, world


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def teardown(world: int) -> None:
    barrier(world)
    if world > 1:
        torch.distributed.destroy_process_group()


def from_rank_zero(value, world: int):
    """``value`` as rank 0 has it (e.g. a run id drawn at random), the same in every process."""
    if world == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


class WeightedShardSampler(torch.utils.data.Sampler):
    """Weighted draws (with replacement) that several processes share, which torch's samplers do not offer:
    every epoch each rank draws the same indices from one generator seeded by (seed, epoch) and keeps every
    world-th of them, so together the ranks see one weighted epoch of ``len(weights)`` films, and a resumed
    run draws what an uninterrupted one would."""

    def __init__(self, weights, rank: int, world: int, seed: int):
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.rank, self.world, self.seed, self.epoch = rank, world, seed, 0
        self.num_samples = -(-len(self.weights) // world)  # the same count on every rank, or DDP would hang

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        drawn = torch.multinomial(self.weights, self.num_samples * self.world, replacement=True, generator=generator)
        return iter(drawn[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return self.num_samples
