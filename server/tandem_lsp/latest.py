"""Per document, the latest request wins: a newer request answers the one before it at once.

Completions and next edits both run this way: each request of a document sets the previous one's
``active`` event, which makes that one stop waiting and answer nothing; its work is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Holder(Protocol):
    active: asyncio.Event | None  # set when the request holding it is superseded


async def latest_wins(holder: Holder, work: Awaitable[T], on_cancel: Callable[[], None] | None = None,
                      ) -> tuple[bool, T | None]:
    """Run ``work`` as the holder's current request: (True, its result), or (False, None) when a newer
    request of the same holder came first (``work`` is cancelled). ``$/cancelRequest`` cancels ``work``,
    calls ``on_cancel`` and raises."""
    if holder.active is not None:
        holder.active.set()
    superseded = holder.active = asyncio.Event()
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(superseded.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        if on_cancel is not None:
            on_cancel()
        raise
    finally:
        waiter.cancel()
        if holder.active is superseded:
            holder.active = None
    if not task.done():
        task.cancel()
        return False, None
    return True, task.result()
