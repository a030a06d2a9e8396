"""Device and precision: one switch each, resolved once when a run starts and then recorded.

`--precision auto` is decided from what the device *is*, never from a timing, so the same machine and
model always get the same answer: the run's config.toml then holds the concrete value ("fp32" or
"bf16"), and resume, eval, predict and nearest use that value, not a new decision.

The rule, and the measurements behind it (SmolLM2-135M-Instruct is hidden size 576, gpt2 768, gpt2-large 1280):

- CUDA: bf16 where the GPU computes it natively (compute capability 8.0, Ampere, and later), else fp32
  (a T4 or V100 emulates bf16).
- CPU with AMX (Intel Sapphire Rapids and later): bf16 for models of hidden size >= 1024 only. AMX
  multiplies bf16 matrices ~5x faster than fp32 at 2048x2048 but only ~1.7x at 256x256, and a whole
  SmolLM2 training step was no faster (37 against 38 examples/s at batch 32).
- CPU with AVX512-BF16 but no AMX (AMD Zen 4 EPYC): bf16. Measured by a promptgrad training step at
  batch 16: 1.36x fp32 for SmolLM2-135M-Instruct, 1.5x at the gpt2 shape, 1.95x at the gpt2-large shape.
- Any other CPU (AVX2 only): fp32. PyTorch emulates bf16 there, about 100x slower.

The prompt itself always keeps an fp32 master copy; bf16 means the frozen weights and activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from promptgrad.errors import UserError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
AMX_MIN_HIDDEN = 1024  # below this, AMX's bf16 did not pay for a whole training step (see above)


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" or "bf16"
    reason: str  # why, in a few words, for the record (Started event, the CLI's first line)


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """`local_rank` picks this process's GPU under a distributed launcher."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for but no CUDA GPU is visible; use device cpu or auto", "device")
    return torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)


def cpu_capabilities() -> dict:
    """What torch's own CPU detection reports (cpu_name, avx512_bf16, amx_bf16, ...)."""
    get = getattr(torch.cpu, "get_capabilities", None)
    return (
        get()
        if get
        else {
            "cpu_name": "unknown",
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "amx_bf16": torch.cpu._is_amx_tile_supported(),
        }
    )


def cpu_description() -> str:
    """The CPU and the flags that decide precision, for benchmarks to print beside their figures."""
    caps = cpu_capabilities()
    flags = [name for name in ("avx2", "avx512_f", "avx512_bf16", "amx_bf16", "amx_tile") if caps.get(name)]
    return f"{caps.get('cpu_name', 'unknown CPU')} ({', '.join(flags) or 'no vector flags reported'}; {torch.get_num_threads()} threads)"


def native_bf16(device: torch.device) -> bool:
    """Does this device multiply bf16 in hardware? PyTorch emulates it elsewhere, many times slower.
    CUDA: compute capability 8.0 (Ampere) or later, asked of this device, not the current one
    (`torch.cuda.is_bf16_supported()` counts emulation by default, so it says yes on a T4 or V100)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        caps = cpu_capabilities()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    return True  # other backends: no way to tell; assume what they offer is native


def device_name(device: torch.device) -> str:
    return (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else cpu_capabilities().get("cpu_name") or "this CPU"
    )


def check_recorded_precision(precision: str, device: torch.device, run: str, evaluating: bool) -> None:
    """A run recorded in bf16 keeps bf16 (it defines the run), but on a device that only emulates bf16
    it would run many times slower without a word: refuse, and say how to choose."""
    if precision != "bf16" or native_bf16(device):
        return
    how = (
        "evaluate it where bf16 is native, or in fp32 here with --precision fp32 (the scores then differ slightly "
        "from the run's own)"
        if evaluating
        else f"resume it where bf16 is native (a GPU since Ampere, a CPU with AVX512-BF16 or AMX), or start a new run "
        f"in fp32 from its prompt: promptgrad train --init run:{run} --precision fp32"
    )
    raise UserError(
        f"run {run} computes in bf16, which {device_name(device)} only emulates (many times slower); {how}", "precision"
    )


def choose_precision(precision: str, device: torch.device, hidden_size: int) -> PrecisionChoice:
    """The concrete precision for `precision` (auto, fp32 or bf16) on this device for a model of this
    hidden size; a pure function of the device's capabilities and the shape."""
    if precision not in ("auto", *DTYPES):
        raise UserError(f"precision must be auto, fp32 or bf16, got {precision!r}", "precision")
    if precision == "bf16" and not native_bf16(device):
        return PrecisionChoice(
            "bf16", f"as configured, though {device_name(device)} only emulates bf16 (many times slower than fp32)"
        )
    if precision != "auto":
        return PrecisionChoice(precision, "as configured")
    if device.type == "cuda":
        if native_bf16(device):
            return PrecisionChoice("bf16", f"auto: {torch.cuda.get_device_name(device)} computes bf16 natively")
        return PrecisionChoice("fp32", f"auto: {torch.cuda.get_device_name(device)} only emulates bf16 (before Ampere)")
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"auto: fp32 on {device.type}")
    caps = cpu_capabilities()
    if caps.get("amx_bf16"):
        if hidden_size >= AMX_MIN_HIDDEN:
            return PrecisionChoice(
                "bf16", f"auto: CPU has AMX and the model's hidden size {hidden_size} >= {AMX_MIN_HIDDEN}"
            )
        return PrecisionChoice(
            "fp32", f"auto: CPU has AMX but at hidden size {hidden_size} < {AMX_MIN_HIDDEN} bf16 does not pay"
        )
    if caps.get("avx512_bf16"):
        return PrecisionChoice("bf16", "auto: CPU has AVX512-BF16")
    return PrecisionChoice("fp32", "auto: CPU has no bf16 matrix instructions (PyTorch would emulate bf16)")
