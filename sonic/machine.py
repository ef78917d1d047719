"""What a result was computed on: processor, torch build, threads and accelerator. Floats of CPU training and
sampling differ between processor types and torch builds, so the tables say where their numbers came from."""

from __future__ import annotations

import platform
from pathlib import Path


def processor() -> str:
    """The CPU model (``/proc/cpuinfo``'s ``model name`` on Linux; ``platform.processor()`` elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe(device: str | None = None) -> dict:
    """The machine of this process: processor, torch version and CUDA build, torch's CPU threads, and the
    accelerator's name when ``device`` is a CUDA device."""
    import torch

    info = {"processor": processor(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
            "threads": torch.get_num_threads()}
    if device and str(device).startswith("cuda") and torch.cuda.is_available():
        info["accelerator"] = torch.cuda.get_device_name(torch.device(device))
    return info


def summary(info: dict) -> str:
    """One line, e.g. ``AMD EPYC 9B14, torch 2.13.0+cpu, 1 thread``."""
    parts = [info.get("accelerator") or info.get("processor", "?"), f"torch {info.get('torch', '?')}"]
    threads = info.get("threads")
    if threads:
        parts.append(f"{threads} thread" + ("s" if threads != 1 else ""))
    return ", ".join(parts)
