"""What the endpoints of both protocols share, apart from HTTP (as MLServer's DataPlane): the
model's life cycle (loading -> ready -> draining, or failed), the version serving (a request holds
it from its start to its end: `serving()`), the warnings about it, and the answers, built and
rendered to JSON in the pool's threads, never on the event loop. A request that cannot be answered
raises `protocol.RequestError`; the endpoints (runtime/serving/app.py) read requests and send these answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from runtime import backends, bundle
from runtime.classifier import BatchError, Prediction, SentimentClassifier
from runtime.explain import Explanation, NoRunningOpinion
from runtime.serving import protocol
from runtime.serving.follow import Follower
from runtime.serving.metrics import Metrics
from runtime.serving.pool import ClassifierPool
from runtime.serving.protocol import RequestError
from runtime.serving.versions import ModelHolder, ServedModel

# A request with a body over this is heavy (up to a second of work for 1 MiB): heavy requests use at
# most all classifiers but one at once, so a short request always finds one free.
HEAVY_BODY_BYTES = 64 * 1024
NOT_READY = {
    "loading": "the model is loading",
    "draining": "the server is shutting down",
    "failed": "the model could not be loaded",
}
T = TypeVar("T")
ERROR_LOG = logging.getLogger("uvicorn.error")  # stderr, set up by runtime.serving.server


def package_version() -> str:
    try:
        return metadata.version("imdb-sentiment-edge")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def without_folder(message: str, folder: Path) -> str:
    """`message` with the model folder's path (as given, or resolved) shortened to its name."""
    for shown in sorted({str(folder), str(folder.resolve())}, key=len, reverse=True):
        message = message.replace(shown, folder.name)
    return message


def classify_each(classifier: SentimentClassifier, texts: list[str], min_known: float = 0.0) -> list[Prediction | str]:
    """Each text's Prediction, or the message saying why it has none."""
    try:
        return classifier.classify_batch(texts, min_known)
    except BatchError as error:
        return [
            prediction if prediction is not None else error.errors[index]
            for index, prediction in enumerate(error.predictions)
        ]


class DataPlane:
    """The model behind every endpoint: the version serving, in a ModelHolder (`pool` is its
    classifiers), and with --models a Follower that swaps in new versions. `phase`: loading -> ready
    -> draining (or failed)."""

    def __init__(self, pool: ClassifierPool, metrics: Metrics, model_version: str = protocol.MODEL_VERSION):
        self.holder, self.metrics = ModelHolder(ServedModel(pool, model_version)), metrics
        self.follower: Follower | None = None  # set by the server with --models
        self.phase = "loading"
        self.version = package_version()
        self.on_loaded: Callable[[], None] | None = None  # set by the server: say so
        self.on_load_failed: Callable[[BaseException], None] | None = None  # set by the server: stop, exit 1
        # Warnings about the loaded model (an unverified artifact), in every answer about it.
        self.warnings: tuple[str, ...] = ()
        self._warnings_lock = threading.Lock()
        self._heavy_slots = asyncio.Semaphore(max(1, pool.size - 1))

    @property
    def pool(self) -> ClassifierPool:
        """The classifiers of the version serving now."""
        return self.holder.current.pool

    # --- life cycle ---

    def start_loading(self) -> None:
        """Load the classifiers in a daemon thread: the server answers meanwhile, and a stop never
        waits for a load that hangs (a stuck file, a slow disk); the process exits without it."""
        loop = asyncio.get_running_loop()

        def load() -> None:
            try:
                self.pool.load()
                outcome = None
            except Exception as error:  # any load failure: said in one line, and the server stops
                outcome = error
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped meanwhile
                loop.call_soon_threadsafe(self._load_finished, outcome)

        threading.Thread(target=load, name="load-classifiers", daemon=True).start()

    def _load_finished(self, error: BaseException | None) -> None:
        if error is not None:
            self.phase = "failed"
            if self.on_load_failed is not None:
                self.on_load_failed(error)
            return
        self.metrics.describe_model(self.pool.description, self.holder.current.version)
        if self.phase == "loading":
            self.phase = "ready"
            self.metrics.ready.set(1)
        if self.on_loaded is not None:
            self.on_loaded()

    def note_warning(self, message: str) -> bool:
        """Keep a warning about the model for the answers; False if it was already known."""
        with self._warnings_lock:
            if message in self.warnings:
                return False
            self.warnings += (message,)
            return True

    def drain(self) -> None:
        """Stop saying ready (the server stops accepting and finishes what is in flight)."""
        if self.phase in ("loading", "ready"):
            self.phase = "draining"
        self.metrics.ready.set(0)

    def not_ready(self) -> str:
        """Why the server is not ready, in the words its answers give."""
        return NOT_READY[self.phase]

    @contextlib.contextmanager
    def serving(self) -> Iterator[ServedModel]:
        """The version serving, held by the request from its start to its end (a swap meanwhile
        serves the next requests), or a 503. Draining still answers (a request that reached the app
        before the stop is finished), if the classifiers are loaded: a stop may come while they load."""
        with self.holder.lease() as served:
            if not served.pool.description or self.phase == "failed":
                raise RequestError(503, self.not_ready(), {"Retry-After": "1"})
            yield served

    def describe(self) -> dict:
        """The /v1/model answer: the model serving, its version, and the last reload that swapped or failed."""
        with self.serving() as served:
            answer = {**served.pool.description, "version": served.version}
        if self.follower is not None and self.follower.last is not None:
            answer["last_reload"] = self.follower.last.to_dict()
        return answer

    @staticmethod
    def require_named_model(served: ServedModel, name: str, version: str | None) -> str:
        """`name` if it is the served model (and `version`, if given, the version serving), else a 404."""
        serves = served.pool.description["name"]
        if name != serves:
            raise RequestError(404, f"no model named {name!r}; this server serves {serves!r}")
        if version is not None and version != served.version:
            raise RequestError(404, f"model {name!r} has no version {version!r}; it serves {served.version!r}")
        return name

    # --- the answers, each built in a pool thread of the version the request holds. The endpoints
    # enter serving() (and check the name) first, before reading the body: a 503 or 404 comes before a body error.

    async def _run(self, served: ServedModel, work: Callable[[SentimentClassifier], T], body_bytes: int) -> T:
        """`work` on a classifier of the version; a heavy request first waits (on the loop) for a slot."""
        if body_bytes <= HEAVY_BODY_BYTES:
            return await served.pool.run(work)
        async with self._heavy_slots:
            return await served.pool.run(work)

    async def predict(self, served: ServedModel, texts: list[str], body_bytes: int, min_known: float = 0.0) -> bytes:
        """The /v1/predict answer: each text's prediction or its own error (among them, a text whose
        words the model knows fewer than `min_known` of)."""
        return await self._run(
            served, functools.partial(self._predict_answer, served.version, texts, min_known), body_bytes
        )

    def _predict_answer(
        self, version: str, texts: list[str], min_known: float, classifier: SentimentClassifier
    ) -> bytes:
        outcomes = classify_each(classifier, texts, min_known)
        self.metrics.count_outcomes(outcomes)
        return protocol.render(protocol.predict_response(outcomes, version, self.warnings))

    async def explain(self, served: ServedModel, text: str, body_bytes: int, min_known: float = 0.0) -> bytes:
        """The /v1/explain answer; 422 for a text that cannot be classified (or of whose words the model
        knows fewer than `min_known`), 409 for a model that has no opinion after each word (a backward
        direction or attention: explain is not defined for it, whatever the text), 501 for a model
        without a per-step artifact."""
        try:
            answer = await self._run(
                served, functools.partial(self._explain_answer, served.version, text, min_known), body_bytes
            )
        except NoRunningOpinion as error:
            raise RequestError(409, str(error)) from None
        if isinstance(answer, str):
            raise RequestError(422, answer)
        return answer

    def _explain_answer(
        self, version: str, text: str, min_known: float, classifier: SentimentClassifier
    ) -> bytes | str:
        """The explanation's JSON, or the message saying why it has none (as for a text of /v1/predict)."""
        try:
            explanation: Explanation = classifier.explain(text, min_known)
        except (bundle.BundleError, backends.BackendError) as error:
            # The operator's log names the folder; the client is not told where the server's files are.
            ERROR_LOG.error("explain: %s", error)
            raise RequestError(
                501, f"this model cannot explain: {without_folder(str(error), classifier.folder)}"
            ) from None
        except (ValueError, TypeError) as error:
            self.metrics.count_outcomes([str(error)])
            return str(error)
        self.metrics.count_outcomes([explanation])
        answer = {**explanation.to_dict(), "model_version": version}
        return protocol.render(protocol.with_warnings(answer, self.warnings))

    async def infer(
        self, served: ServedModel, name: str, inference: protocol.InferRequest, body_bytes: int
    ) -> tuple[bytes, int | None]:
        """The Open Inference Protocol's answer, and the length of its JSON if binary tensor data follows
        it (`protocol.infer_answer`); 400 if any text cannot be classified (the protocol has no
        per-item errors)."""
        answer = await self._run(served, functools.partial(self._infer_answer, served, name, inference), body_bytes)
        if isinstance(answer, str):
            raise RequestError(400, answer)
        return answer

    def _infer_answer(
        self, served: ServedModel, name: str, inference: protocol.InferRequest, classifier: SentimentClassifier
    ) -> tuple[bytes, int | None] | str:
        outcomes = classify_each(classifier, inference.texts, inference.min_known)
        self.metrics.count_outcomes(outcomes)
        failed = [(index, outcome) for index, outcome in enumerate(outcomes) if isinstance(outcome, str)]
        if failed:  # the request fails, naming the texts
            shown = "; ".join(f"element {index}: {message}" for index, message in failed[:3])
            return f'input "{protocol.INPUT_TEXT}" {shown}' + (
                f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
            )
        labels = served.pool.description["labels"]
        return protocol.infer_answer(name, served.version, inference, labels, outcomes)
