"""Device and precision: one switch each, resolved once (nanoGPT's way), never scattered casts.

bf16 weights halve memory traffic and, on CUDA and on CPUs with bf16 matrix units, run the matrix
products several times faster than fp32. The prompt itself always keeps an fp32 master copy.
"""

from __future__ import annotations

import time

import torch

from promptgrad.errors import UserError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """`local_rank` picks this process's GPU under a distributed launcher."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto", "device")
    return torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 on CUDA. On a CPU, bf16 only where it is really faster: CPUs with bf16 matrix units
    (AVX512-BF16, AMX) run it several times faster than fp32, but without them PyTorch emulates it
    about 100x *slower* (measured on the AVX2-only EPYC these tests run on). A 20 ms probe decides."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_bf16_speedup() > 1.5 else "fp32"
    if precision not in DTYPES:
        raise UserError(f"precision must be auto, fp32 or bf16, got {precision!r}", "precision")
    return precision


def cpu_bf16_speedup(size: int = 256) -> float:
    """How many times faster a bf16 matrix product runs than an fp32 one on this CPU."""
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size, dtype=dtype)
        a @ a  # warm up the kernel choice
        start = time.perf_counter()
        for _ in range(3):
            a @ a
        seconds[dtype] = time.perf_counter() - start
        if dtype == torch.bfloat16 and seconds[dtype] > 5 * seconds[torch.float32]:
            break
    return seconds[torch.float32] / seconds[torch.bfloat16]
