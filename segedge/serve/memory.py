"""Flat memory for days: at most ``ARENAS`` glibc malloc arenas in the serving process.

glibc gives each new thread that allocates under contention an arena of its own, up to 8 per core,
and memory freed into one arena is not reused by the others. The camera feed starts a fresh
capture and inference thread every time the source is opened again (a video that loops, a camera
that comes back), so over hours the overlays' large, short-lived buffers were spread over more
and more arenas. Measured (a 30-frame 640x480 video reopened at once, overlays drawn, 64 px bundle):
RSS 182.3 -> 203.6 MB from the 50th to the 300th reopening with glibc's default, still rising in
steps; 159.5 -> 160.0 MB from the 100th to the 300th with 2 arenas (``MALLOC_ARENA_MAX=2``, the
setting many long-running Python servers use). ``mallopt`` sets the same from inside, before the
model's and the feed's threads start; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(arenas: int = ARENAS) -> bool:
    """True when glibc accepted the limit; False on other C libraries and systems, or when the user chose
    their own with ``MALLOC_ARENA_MAX``."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # musl has no mallopt
        return False
