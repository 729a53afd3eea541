"""Between ticks the operator gives the heap pages the tick freed back to the system: without it
glibc keeps them in its arenas and the RSS creeps up under churn while the live heap is flat."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from aiscaler.handlers.operator import free_memory_releaser


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_pages_go_back_to_the_system() -> None:
    blocks = [bytearray(4000) for _ in range(50_000)]  # ~200 MB below glibc's mmap threshold
    kept = blocks[::50]  # one block in 50 stays live: the heap cannot shrink from its top
    del blocks
    before = rss_mb()
    free_memory_releaser()()
    after = rss_mb()
    assert before - after > 100.0, (before, after)
    assert all(len(block) == 4000 for block in kept)  # live memory untouched
