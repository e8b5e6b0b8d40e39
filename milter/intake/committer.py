"""Group commit: many messages' records in one durable transaction.

Every accepted message needs a committed, fsynced transaction before its 250.
One transaction per message would make fsync the bottleneck; instead a single
writer thread takes every piece of work waiting, runs each inside its own
savepoint (so one bad message fails alone), commits once, and only then tells
each waiting session the outcome. This is how PostgreSQL and Postfix's queue
manager amortise the disk flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection

from milter.kernel.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()


class Committer:
    def __init__(self, database: Database, max_batch: int = 128) -> None:
        self.database = database
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="committer", daemon=True)
        self._thread.start()

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction; returns once it is committed."""
        if self._closed:  # nothing would ever commit it: fail now (the client hears 4xx)
            raise RuntimeError("the committer is closed; the gateway is stopping")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((work, future, loop))
        return await future

    def close(self) -> None:
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[Any]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.database.write() as connection:
                for work, _future, _loop in batch:
                    savepoint = connection.begin_nested()
                    try:
                        result = work(connection)
                    except Exception as exc:
                        savepoint.rollback()
                        outcomes.append((False, exc))
                    else:
                        savepoint.commit()
                        outcomes.append((True, result))
        except Exception as exc:  # the commit itself failed: nothing in this batch is durable
            log.exception("commit of %d messages failed", len(batch))
            outcomes = [(False, exc)] * len(batch)
        for (ok, value), (_work, future, loop) in zip(outcomes, batch, strict=True):
            with contextlib.suppress(RuntimeError):  # that event loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
