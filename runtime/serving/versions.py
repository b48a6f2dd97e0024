"""Which version of the model serves: one holder, read once by each request at its start.

A request takes a lease on the version serving when it starts and keeps it to its end, so a swap
(runtime/serving/follow.py) never changes the model under a request: requests that started before
it finish on the old version, those after it run on the new one. The old version's classifiers are
closed once its last lease ends. Everything here runs on the event loop's thread (the endpoints and
the swap), so the counts need no lock.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Iterator

from runtime.serving.pool import ClassifierPool


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One loaded version: its classifiers and its version ("4" for MODELS/versions/4; "1" for a
    plain --model folder). Compared by identity: two loads of one folder are two versions served."""

    pool: ClassifierPool
    version: str


class ModelHolder:
    """The version serving, and the versions swapped out that still have requests in flight."""

    def __init__(self, first: ServedModel):
        self.current = first
        self._leases: dict[ServedModel, int] = {}
        self._retired: set[ServedModel] = set()

    @contextlib.contextmanager
    def lease(self) -> Iterator[ServedModel]:
        """The version serving now, kept for the whole request even if a swap comes meanwhile."""
        served = self.current
        self._leases[served] = self._leases.get(served, 0) + 1
        try:
            yield served
        finally:
            self._leases[served] -= 1
            if not self._leases[served]:
                del self._leases[served]
                if served in self._retired:
                    self._close(served)

    def in_flight(self, served: ServedModel) -> int:
        return self._leases.get(served, 0)

    def swap(self, new: ServedModel) -> ServedModel:
        """Serve `new` from the next request on; the old version closes when its last request ends."""
        old, self.current = self.current, new
        if self.in_flight(old):
            self._retired.add(old)
        else:
            self._close(old)
        return old

    def _close(self, served: ServedModel) -> None:
        self._retired.discard(served)
        # pool.close waits for its threads: off the event loop, and never holding up a stop.
        threading.Thread(target=served.pool.close, name="close-version", daemon=True).start()

    def close(self) -> None:
        """At shutdown: close the version serving (its requests have finished)."""
        if self.current.pool.description:
            self.current.pool.close()
