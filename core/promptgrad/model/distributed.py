"""Data parallelism on PyTorch distributed, as launched by `accelerate launch` or `torchrun`.

Each process takes its share of every global batch; the prompt's gradient is summed across processes
(each process divides its loss by the *global* number of target tokens, so the sum is exactly the
single-process mean-loss gradient); evaluation is split across processes and the per-pair values gathered. Only
rank 0 writes the run folder. Without a launcher's environment (WORLD_SIZE unset or 1) every call here
is a no-op, and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def share(self, items: list[T]) -> list[T]:
        """This process's share of a list (every world_size-th item, so lengths stay balanced)."""
        return items[self.rank :: self.world_size] if self.active else items

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def sum_(self, tensor: torch.Tensor) -> None:
        if self.active:
            dist.all_reduce(tensor)

    def gather(self, rows: torch.Tensor, n_items: int) -> torch.Tensor:
        """The rows of a whole list of `n_items` items from each process's rows of its `share`, on every
        process, back in the list's order (so what is computed from them, a bootstrap interval say, does
        not depend on the number of processes). Shares differ in length by one at most; all_gather wants
        equal shapes, so each is padded to the longest and cut back after."""
        if not self.active:
            return rows
        sizes = [len(range(rank, n_items, self.world_size)) for rank in range(self.world_size)]
        padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
        padded[: len(rows)] = rows
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        whole = torch.empty((n_items, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
        for rank, (part, size) in enumerate(zip(parts, sizes)):
            whole[rank :: self.world_size] = part[:size]  # the inverse of share()
        return whole

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process if it is True on any (a stop requested on one stops all)."""
        return bool(self.sum([float(flag)], device)[0]) if self.active else flag


def processes(device_type: str) -> Processes:
    """Join the launcher's process group (gloo on CPUs, nccl on CUDA) if there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
