"""Reading a file the editor did not open: only regular files, bounded in size, never on the event loop.

A URI can name anything: a FIFO (opening it blocks until a writer comes), ``/dev/zero`` (reading it never
ends), a directory, a file of gigabytes. ``read_text_file`` refuses all but regular files and opens
with ``O_NONBLOCK`` (a FIFO swapped in after the check cannot block the open either), and reads at most
``MAX_FILE_BYTES``. It still makes system calls that a stuck file system can hold, so callers run it in
this module's own small thread pool, with a time limit: ``read_text_file_async`` on the event loop,
``read_text_file_within`` from a worker thread. A file that cannot be read in time is None, as one that
does not exist.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import stat

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 4 * 1024 * 1024
READ_TIMEOUT_S = 2.0
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
# its own threads: a read held by a stuck file system must not take the default executor's threads
_READERS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="tandem-read")


def read_text_file(path: str, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """The text of a regular file of at most ``max_bytes`` (undecodable bytes replaced); None for
    anything else. Blocking: call it off the event loop."""
    try:
        if not _regular(os.stat(path), path, max_bytes):
            return None
        fd = os.open(path, _FLAGS)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    try:
        if not _regular(os.fstat(fd), path, max_bytes):  # replaced between the check and the open
            return None
        parts, size = [], 0
        while chunk := os.read(fd, min(1 << 16, max_bytes + 1 - size)):
            parts.append(chunk)
            size += len(chunk)
            if size > max_bytes:  # it grew (or a /proc file that reports no size)
                log.debug("not reading %s: over %d bytes", path, max_bytes)
                return None
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(parts).decode("utf-8", errors="replace")


def _regular(st: os.stat_result, path: str, max_bytes: int) -> bool:
    if not stat.S_ISREG(st.st_mode):
        log.debug("not reading %s: not a regular file", path)
        return False
    if st.st_size > max_bytes:
        log.debug("not reading %s: %d bytes", path, st.st_size)
        return False
    return True


def read_text_file_within(path: str, timeout_s: float = READ_TIMEOUT_S) -> str | None:
    """``read_text_file`` from a worker thread (never the event loop), given up after ``timeout_s``."""
    if timeout_s <= 0:
        return None
    future = _READERS.submit(read_text_file, path)
    try:
        return future.result(timeout_s)
    except concurrent.futures.TimeoutError:
        log.warning("reading %s took over %.1f s: left out", path, timeout_s)
        return None


async def read_text_file_async(path: str, timeout_s: float = READ_TIMEOUT_S) -> str | None:
    """``read_text_file`` in the reader threads, awaited at most ``timeout_s``."""
    future = asyncio.get_running_loop().run_in_executor(_READERS, read_text_file, path)
    try:
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        log.warning("reading %s took over %.1f s: left out", path, timeout_s)
        return None
