"""covid_core.freed_memory: memory the server has freed goes back to the system, not only back to glibc."""

from __future__ import annotations

import threading

import pytest

from covid_core import freed_memory

GLIBC = freed_memory._malloc_trim() is not None


UPLOADS_FREED = """
import json
from covid_core.freed_memory import release_freed_memory

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

warm = b"x" * (8 << 20)  # once an 8 MB block is freed, glibc serves blocks of that size from its heap
del warm
uploads, kept = [], []
for _ in range(40):  # 320 MB of films, each followed by something that stays (as a session's other objects)
    uploads.append(b"y" * (8 << 20))
    kept.append(b"z" * 200_000)
before = rss_mb()
del uploads
freed = rss_mb()
released = release_freed_memory()
print(json.dumps({"before": before, "freed": freed, "released": released, "after": rss_mb()}))
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; other C libraries hand memory back their own way")
def test_uploads_freed_inside_the_process_go_back_to_the_system():
    """In a fresh interpreter, as a server starts: no other test's allocations or releasing thread in the way."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", UPLOADS_FREED], capture_output=True, text=True, timeout=120, check=True)
    mb = json.loads(out.stdout)
    assert mb["freed"] > mb["before"] - 100  # glibc kept most of it: the size stayed at its high-water mark
    assert mb["released"] and mb["freed"] - mb["after"] > 200  # handed back


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; other C libraries hand memory back their own way")
def test_the_app_server_starts_one_releasing_thread_however_often_pages_run(env):
    from streamlit.testing.v1 import AppTest

    from app_helpers import APP

    for _ in range(3):
        AppTest.from_file(APP, default_timeout=60).run()
    names = [t.name for t in threading.enumerate()]
    assert names.count(freed_memory.THREAD_NAME) == 1
