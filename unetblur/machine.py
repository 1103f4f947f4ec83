"""What machine a measurement ran on: recorded beside every timed result, because speed ratios
between methods depend on it (an INT8 network's lead over a float detector needs VNNI on x86).
Standard library only: the torch-free runtime imports it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

_X86 = ("x86_64", "amd64", "i386", "i686")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_has_vnni() -> bool:
    """True when this x86 CPU has VNNI dot-product instructions (avx512_vnni or avx_vnni). Non-x86 CPUs
    (ARM: Pi, Jetson) return True: their int8 kernels do not saturate the way AVX2's do. An x86 CPU
    whose flags cannot be read returns False (the safe guess: assume it saturates)."""
    if platform.machine().lower() not in _X86:
        return True
    flags = _cpuinfo()
    return "avx512_vnni" in flags or "avx_vnni" in flags


def machine_info() -> dict:
    """Cores, CPU, platform and whether int8 runs with VNNI: stored with every timed result."""
    return {"cpu_count": os.cpu_count(), "cpu": cpu_name(), "platform": platform.platform(),
            "int8_vnni": cpu_has_vnni()}


def describe_machine(info: dict) -> str:
    """One phrase for a table's header, e.g. "2 CPU cores (AMD EPYC, int8 without VNNI)"; older records
    name the CPU as ``processor`` (no VNNI field) or not at all."""
    cores = f"{info.get('cpu_count', '?')} CPU cores"
    if "cpu" in info:
        return f"{cores} ({info['cpu']}, int8 {'with' if info.get('int8_vnni') else 'without'} VNNI)"
    return f"{cores} ({info['processor']})" if info.get("processor") else cores
