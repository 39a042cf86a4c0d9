"""glibc's malloc set for a process whose big buffers come and go: one growing segment per
stream (recorder/segmenter.py: ~1.5 MB at 3 Mbit/s and 4 s), freed at every cut.

glibc serves a request of at least M_MMAP_THRESHOLD (128 KiB) from its own mapping, which
free() unmaps; but it raises the threshold to the size of each such block freed (up to 32
MiB), so from the first segment freed on, segments come from the heap, and a heap whose top
holds a small live object cannot shrink: RSS stays at its peak. Measured with
bench/memory.py, N=20 x 720p 3 Mbit/s: 2.22 MB/stream over idle while pushing, 18 MB kept
after the pushes ended; with the threshold fixed at its default, 1.14 MB/stream and 8 MB.
Setting it turns the raising off (mallopt(3)). A no-op on other C libraries.

Why not higher: asyncio's selector transport allocates 256 KiB for every recv(), so above
that those buffers would come from the heap (a 12 KB send+recv took ~15 us instead of
~35 us in a loop), but each stream's segment then sits in the heap until it passes the
threshold: 288 KiB cost +0.2 MB/stream while pushing (N=20), and bench/ingest.py showed no
CPU difference at N=20 (1.01-1.02 vs 1.07-1.24 % of a core per stream, noisy)."""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's default, held fixed


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold; True when it was set (glibc), else False."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter is linked with
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError) as exc:
        log.debug("mallopt unavailable: %s", exc)
        return False
