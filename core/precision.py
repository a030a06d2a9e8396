"""Device and precision: one switch each, resolved once (nanoGPT's way), never scattered casts.

bf16 weights halve memory traffic and, on CUDA and on CPUs with bf16 matrix units, run the matrix
products several times faster than fp32. The prompt itself always keeps an fp32 master copy.
"""

from __future__ import annotations

import torch

from promptgrad.errors import UserError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto", "device")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 on CUDA; on a CPU, bf16 too, since it trained faster than fp32 to the same test loss
    here (see benchmarks/README.md); fp32 if the CPU lacks bf16 support altogether."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if torch.backends.mkldnn.is_available() else "fp32"
    if precision not in DTYPES:
        raise UserError(f"precision must be auto, fp32 or bf16, got {precision!r}", "precision")
    return precision
