"""The classifiers the endpoints share: one interpreter thread each, as many pool threads, so that
many requests classify at once (one per core) while the event loop goes on serving."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from runtime.classifier import ClassifierOptions, SentimentClassifier
from runtime.model_options import load_classifier

T = TypeVar("T")


class ClassifierPool:
    """`size` classifiers and as many threads, so `size` requests classify at once (one per core)
    while the event loop goes on serving; a thread borrows an idle classifier for one request."""

    def __init__(self, size: int, load_classifier: Callable[[], SentimentClassifier]):
        self.size = size
        self._load_classifier = load_classifier
        self._idle: queue.SimpleQueue[SentimentClassifier] = queue.SimpleQueue()
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="classifier")
        self._classifiers: list[SentimentClassifier] = []
        self.description: dict = {}

    @classmethod
    def for_model(cls, model: ClassifierOptions, size: int) -> "ClassifierPool":
        """A pool of the model the options name. Each classifier runs one interpreter thread: the
        pool's threads are the parallelism, and more interpreter threads would compete for the cores."""
        return cls(size, functools.partial(load_classifier, dataclasses.replace(model, threads=1)))

    def load(self) -> None:
        """Load every classifier (blocking; the server calls it from a thread)."""
        for _ in range(self.size):
            classifier = self._load_classifier()
            self._classifiers.append(classifier)
            self._idle.put(classifier)
        self.description = self._classifiers[0].describe()

    def each(self, work: Callable[[SentimentClassifier], None]) -> None:
        """`work` on every classifier, in the caller's thread: for a pool not yet serving (a check)."""
        for classifier in self._classifiers:
            work(classifier)

    async def run(self, work: Callable[[SentimentClassifier], T]) -> T:
        """`work(classifier)` in a pool thread, with a classifier to itself: the classifying and the
        answer's JSON both happen there, so the event loop only moves bytes."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._borrow, work)

    def _borrow(self, work: Callable[[SentimentClassifier], T]) -> T:
        classifier = self._idle.get()
        try:
            return work(classifier)
        finally:
            self._idle.put(classifier)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for classifier in list(self._classifiers):
            classifier.close()
