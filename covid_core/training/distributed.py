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
