"""This process's resident memory on Linux, now and its peak since the last reset: the CPU benchmarks'
measure of one phase's memory (``benchmarks/clustering.py``, ``benchmarks/trl.py``).

    reset_peak()                      # VmHWM := the current RSS
    ...                               # the phase measured
    status_bytes("VmHWM")             # its peak resident set, in bytes
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["reset_peak", "status_bytes"]


def status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak since the last reset), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
