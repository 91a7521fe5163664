"""Giving memory that the server has freed back to the system (Linux with glibc; elsewhere nothing is done).

After glibc has freed one large block (an uploaded film of several megabytes, a decoded batch), it raises its
threshold for serving large blocks from their own mappings, so later blocks of that size come from the process's
heap, and freeing them keeps the memory inside the process for reuse. A server that received 320 MB of films from
a browser then stayed at its high-water mark, about 1 GB above what it needed, long after Streamlit had let the
uploads go (bench/site_folder_upload.py). ``malloc_trim(0)`` hands the heap's free pages back; it took 42 ms for
1.6 GB and well under a millisecond when there was nothing to give back.
"""

from __future__ import annotations

import ctypes
import threading
import time

RELEASE_EVERY_S = 30.0
THREAD_NAME = "covid-core-freed-memory"


def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator is not this one
        return None


def release_freed_memory() -> bool:
    """Give the heap's free pages back to the system now; False where the C library has no malloc_trim."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def start_releasing(every_s: float = RELEASE_EVERY_S) -> threading.Thread | None:
    """A daemon thread that calls :func:`release_freed_memory` every ``every_s`` seconds for the life of the
    process (the one already running, if one is); None where there is nothing to call."""
    if _malloc_trim() is None:
        return None
    running = [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]
    if running:
        return running[0]

    def loop():
        while True:
            time.sleep(every_s)
            release_freed_memory()

    thread = threading.Thread(target=loop, name=THREAD_NAME, daemon=True)
    thread.start()
    return thread
