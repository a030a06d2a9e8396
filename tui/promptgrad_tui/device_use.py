"""Device use for the status line: on a GPU box its utilisation and memory, otherwise this process's CPU
use and resident memory. Cheap reads (os.times, /proc/self/statm, CUDA's own counters), made off the UI
thread by the screen's sampling worker; CUDA is never initialised here for the sake of a number."""

from __future__ import annotations

import os
import time


def gigabytes(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


class DeviceUse:
    def __init__(self) -> None:
        self.last: tuple[float, float] | None = None  # (wall clock, CPU seconds of this process) at the last sample

    def sample(self) -> str:
        gpu = self.cuda()
        return gpu if gpu is not None else self.cpu()

    def cuda(self) -> str | None:
        import torch

        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return None
        free, total = torch.cuda.mem_get_info()
        try:
            busy = f"GPU {torch.cuda.utilization()}% · "  # needs NVML (pynvml); memory is enough without it
        except Exception:  # noqa: BLE001 (no NVML on this box)
            busy = ""
        return f"{busy}{gigabytes(total - free)}/{gigabytes(total)}"

    def cpu(self) -> str:
        times = os.times()
        now, cpu = time.monotonic(), times.user + times.system
        share = ""
        if self.last is not None and now > self.last[0]:
            share = f"CPU {100 * (cpu - self.last[1]) / (now - self.last[0]):.0f}% · "
        self.last = (now, cpu)
        try:
            with open("/proc/self/statm") as f:
                resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            return f"{share}RSS {gigabytes(resident)}"
        except (OSError, ValueError, IndexError):
            return share.removesuffix(" · ")
