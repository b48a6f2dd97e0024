"""Follow a models folder as `python -m runtime.update` writes it (MODELS/versions/N, and
MODELS/current, a symbolic link to one of them): when `current` points elsewhere (looked at every
few seconds), on SIGHUP, or on the Open Inference Protocol's `POST /v2/repository/models/{name}/load`,
load the version it points at beside the one serving, check it, and swap between requests
(runtime/serving/versions.py). A version that fails to load or to answer is not served: the old
one goes on, and the outcome (in /v1/model, the metrics and the log) says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from runtime.classifier import ClassifierOptions, SentimentClassifier
from runtime.serving.metrics import Metrics
from runtime.serving.pool import ClassifierPool
from runtime.serving.versions import ModelHolder, ServedModel

# A new version answers these before it serves: it loads, runs and gives probabilities.
PROBES = ("A wonderful film with a brilliant cast.", "Dull and far too long.")
OUTCOMES = ("swapped", "unchanged", "failed")
T = TypeVar("T")


@dataclass(frozen=True)
class FollowSettings:
    """`--models DIR`: the folder to follow, and how often `current` is looked at."""

    models: Path
    interval: float = 2.0  # seconds; reading a link costs microseconds


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload did: swapped to `version`, found it `unchanged`, or `failed` (and why)."""

    outcome: str  # one of OUTCOMES
    version: str  # the version `current` points at ("" if it points at none)
    serving: str  # the version serving afterwards
    trigger: str  # "watch", "SIGHUP" or "load endpoint"
    seconds: float  # loading and checking the new version; the swap itself is one assignment
    at: str  # UTC, ISO 8601
    error: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ReloadError(Exception):
    """A version that cannot be served: one line."""


def current_target(models: Path) -> Path:
    """The version folder MODELS/current points at, resolved (so every classifier of a load reads
    the same version even if `current` moves meanwhile)."""
    link = models / "current"
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ReloadError(f"{link}: no such version (python -m runtime.update installs one)") from None
    if not target.is_dir() or not target.name.isdigit():
        raise ReloadError(f"{link} points at {target.name!r}, not a version folder (versions/N)")
    return target


def check_answers(classifier: SentimentClassifier) -> None:
    """The probes' answers: every label's probability finite and together 1."""
    for text in PROBES:
        probabilities = list(classifier.classify(text).probabilities.values())
        if not all(math.isfinite(p) for p in probabilities) or abs(sum(probabilities) - 1) > 1e-3:
            raise ReloadError(f"it answers {text!r} with probabilities {probabilities}")


def in_daemon_thread(work: Callable[[], T]) -> asyncio.Future:
    """`work()` in a daemon thread, awaitable: a stop never waits for a load that hangs (a stuck
    file, a slow disk); the process exits without it."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            result, error = work(), None
        except Exception as failure:  # handed to the awaiting coroutine
            result, error = None, failure
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="load-version", daemon=True).start()
    return future


class Follower:
    """Loads the version `current` points at beside the one serving, checks it, swaps it in."""

    def __init__(
        self, settings: FollowSettings, model: ClassifierOptions, size: int, holder: ModelHolder, metrics: Metrics
    ):
        self.settings, self.model, self.size = settings, model, size
        self.holder, self.metrics = holder, metrics
        self.serving_folder = model.folder  # the version serving, resolved
        self.last: ReloadOutcome | None = None
        self.on_outcome: Callable[[ReloadOutcome], None] | None = None  # set by the server: log it
        self._failed: Path | None = None  # the watch does not retry a failed version until `current` moves
        self._lock = asyncio.Lock()  # one reload at a time; a trigger during one waits for it
        self._tasks: set[asyncio.Task] = set()
        for outcome in OUTCOMES:
            metrics.reloads.labels(outcome)

    # --- the triggers ---

    def start(self) -> None:
        """Watch `current` and listen for SIGHUP (on the running loop)."""
        self._spawn(self._watch())
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload("SIGHUP")))

    def stop(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in self._tasks:
            task.cancel()

    def _spawn(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # kept until done: the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            if not self.holder.current.pool.description:  # the first version is still loading
                continue
            with contextlib.suppress(ReloadError):  # no version to go to: the serving one goes on
                target = current_target(self.settings.models)
                if target not in (self.serving_folder, self._failed):
                    await self.reload("watch")

    # --- the reload ---

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Load what `current` points at, check it and swap it in; or say why not."""
        async with self._lock:
            started = time.monotonic()
            serving = self.holder.current
            if not serving.pool.description:  # SIGHUP while the first version loads: nothing to compare yet
                return self._done("failed", "", trigger, started, "the first version is still loading")
            version, error = "", None
            try:
                target = current_target(self.settings.models)
                version = target.name
                if target == self.serving_folder:
                    return self._done("unchanged", version, trigger, started)
                expected = serving.pool.description["name"]
                pool = await in_daemon_thread(functools.partial(self._load, target, expected))
            except ReloadError as failure:
                error = str(failure)
            except Exception as failure:  # any load failure (BundleError, BackendError, OSError...)
                error = f"{type(failure).__name__}: {failure}"
            if error is not None:
                self._failed = target if version else None
                # One line; clients are told the version folder's name, not the server's paths.
                message = " ".join(error.split()).replace(str(self.settings.models.resolve()), "MODELS")
                return self._done("failed", version, trigger, started, message[:400])
            self.holder.swap(ServedModel(pool, version))
            self.serving_folder, self._failed = target, None
            self.metrics.describe_model(pool.description, version)
            return self._done("swapped", version, trigger, started)

    def _load(self, target: Path, expected_name: str) -> ClassifierPool:
        """The new version's classifiers, loaded and checked (in a daemon thread)."""
        pool = ClassifierPool.for_model(dataclasses.replace(self.model, folder=target), self.size)
        try:
            pool.load()
            name = pool.description["name"]
            if name != expected_name:  # the endpoints' URLs name the model: a rename would break clients
                raise ReloadError(f"version {target.name} is model {name!r}; this server serves {expected_name!r}")
            pool.each(check_answers)
        except BaseException:
            pool.close()
            raise
        return pool

    def _done(self, outcome: str, version: str, trigger: str, started: float, error: str | None = None):
        result = ReloadOutcome(
            outcome=outcome,
            version=version,
            serving=self.holder.current.version,
            trigger=trigger,
            seconds=round(time.monotonic() - started, 3),
            at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            error=error,
        )
        self.metrics.reloads.labels(outcome).inc()
        if outcome != "unchanged":
            self.last = result
        if self.on_outcome is not None:
            self.on_outcome(result)
        return result
