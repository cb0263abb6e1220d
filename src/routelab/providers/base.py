"""What a backend can do, declared: the interfaces services talk to.

A backend (`Backend`) names itself, declares its capabilities and builds the objects
behind them:

- a `Router` routes examples to actions (a blocking batch always; one example at a time
  asynchronously where `supports_async`); it estimates what routing n examples costs,
  carries its prompt version and is closed after use;
- a `QuestionGenerator` writes synthetic questions for an action;
- a `BatchLabeler` labels many examples at once through a provider's batch API
  (submit, poll, collect the answers as Routes);
- a `Trainer` trains a router on an export (start, poll, cancel), reporting what happens
  to a `JobReporter` that the services implement over the store: providers never
  write job rows themselves.

Errors are one family: `ProviderError` (with the provider's status and code),
`FatalProviderError` (every request would fail: stop the run) and `RequestFailed`
(this request failed for good; others may succeed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from routelab.domain import Action, BadInput, Example, Job, JobStatus, Proposal, RoutelabError, TrainedModel

if TYPE_CHECKING:
    from routelab.config import Settings

ROUTE, TRAIN, GENERATE, BATCH = "route", "train", "generate", "batch"  # capabilities a backend declares


# ---------------------------------------------------------------------------- values


class Route(BaseModel):
    action: str | None  # None when the answer was invalid (refusal, unparsable, unknown action)
    valid: bool = True
    confidence: float | None = None
    raw: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float | None = None

    def proposal(self, example_id: int, model: str, prompt_version: str = "v1") -> Proposal:
        return Proposal(example_id=example_id, model=model, prompt_version=prompt_version,
                        **self.model_dump())


@dataclass
class Estimate:
    """What a run will send and cost, counted before anything is sent."""

    n: int
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    priced: bool  # False when the model is not in the price table (cost unknown, shown as 0)
    batch: bool = False

    def line(self) -> str:
        price = f"${self.cost:.2f}" if self.priced else "unknown cost (model not in the price table)"
        return (f"{self.n} requests to {self.model}{' (Batch API, half price)' if self.batch else ''}: "
                f"~{self.tokens_in:,} input + ~{self.tokens_out:,} output tokens, {price}")


@dataclass
class CallStats:
    """What a backend did on the wire during one run (for the job record and the bench)."""

    requests: int = 0
    retries: int = 0
    by_reason: Counter = field(default_factory=Counter)
    flags: dict[str, Any] = field(default_factory=dict)  # e.g. {"logprobs_disabled": True}, kept in the job


@dataclass
class Generated:
    questions: list[str]
    raw: str
    tokens_in: int
    tokens_out: int
    cost: float


@dataclass
class BatchState:
    """A provider batch as services see it: a neutral status, and the provider's own word for it to show."""

    remote_id: str
    status: JobStatus
    label: str  # what the provider calls this state (shown, never compared)
    done: int = 0
    total: int = 0
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # provider data collect() needs; recorded in the job


@dataclass
class BatchResults:
    routes: list[tuple[int, Route]]  # (example id, route), in no particular order
    failures: list[str]  # one line per request that got no answer


@dataclass(frozen=True)
class TrainingFiles:
    train: Path
    validation: Path | None


# ---------------------------------------------------------------------------- errors


class ProviderError(RoutelabError):
    """A backend refused or failed a request. `status`/`code` are the provider's, when it gave them."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param

    @property
    def transient(self) -> bool:
        """Worth trying again later: no answer at all, a timeout, a conflict, a rate limit or a server error."""
        if isinstance(self, FatalProviderError):
            return False
        return self.status is None or self.status in (408, 409, 429) or self.status >= 500


class FatalProviderError(ProviderError):
    """Every request would fail (bad key, no access, no quota): stop the run."""


class RequestFailed(ProviderError):
    """This request failed for good (retries exhausted, or refused); others may succeed."""


class Cancelled(RoutelabError):
    """The job was cancelled while it ran (the reporter said so)."""


# ---------------------------------------------------------------------------- what providers report to


class JobReporter(Protocol):
    """Where a backend reports a job's life. The services implement it over the store."""

    def event(self, message: str, level: str = "info", type: str = "message", data: dict | None = None, *,
              remote_id: str | None = None, at: str | None = None) -> None:
        """One event; `remote_id` (the provider's event id) makes it stored once however often it is reported."""

    def progress(self, done: int, total: int | None = None) -> None: ...

    def status(self, status: JobStatus, error: str | None = None) -> None: ...

    def cancelled(self) -> bool:
        """Has someone cancelled this job (from any process)? Check between steps."""

    def remote(self, remote_id: str, **params: Any) -> None:
        """The provider's id for the job, once it exists (and what else identifies it there)."""

    def result(self, **fields: Any) -> None:
        """Merge into the job's result (e.g. fine_tuned_model, trained_tokens)."""

    def cost(self, usd: float) -> None: ...

    def produced(self, model: TrainedModel) -> None:
        """A model the job made, to be saved in the workspace (once)."""

    def seen(self, remote_id: str) -> bool:
        """Was an event with this provider id reported before (by this or an earlier process)?"""


class UploadLog(Protocol):
    """Files already uploaded (by content hash), so the same bytes never go up twice. The Store is one."""

    def find_upload(self, provider: str, base_url: str, sha256: str, purpose: str) -> str | None: ...

    def record_upload(self, provider: str, base_url: str, sha256: str, purpose: str, remote_id: str,
                      filename: str, size: int) -> None: ...


# ---------------------------------------------------------------------------- what backends offer


class QuestionGenerator(ABC):
    """Writes realistic user questions for one action of a catalog."""

    provider: str
    model: str

    @abstractmethod
    async def agenerate(self, action: Action, catalog: Sequence[Action], n: int,
                        avoid: Sequence[str] = ()) -> Generated:
        """Ask for `n` questions; raises RequestFailed (this request) or FatalProviderError (all of them)."""

    @abstractmethod
    def estimate(self, targets: Sequence[Action], catalog: Sequence[Action], requests: Sequence[int]) -> Estimate:
        """The cost of asking, for each target, one request per entry of `requests` (questions per request)."""

    async def aclose(self) -> None:
        return None


class BatchLabeler(ABC):
    """Labels many examples in one provider batch (bound to one router: its model and prompt)."""

    @abstractmethod
    def submit(self, examples: Sequence[Example], actions: Sequence[Action], *, job_id: int,
               uploads: UploadLog) -> BatchState:
        """Send every example's request in one batch; returns its first state."""

    @abstractmethod
    def poll(self, remote_id: str) -> BatchState: ...

    @abstractmethod
    def collect(self, state: BatchState, actions: Sequence[Action]) -> BatchResults:
        """The answers of a finished batch, as Routes joined to their example ids."""

    def close(self) -> None:
        return None


class Router(ABC):
    """Routes questions (with their conversation) to one action of a catalog."""

    provider: str  # the backend's name
    model: str  # the id stored in proposals.model and shown in tables
    prompt_version: str = "v1"  # proposals are unique per (example, model, prompt version)
    supports_async: bool = False  # has aroute(): one example at a time, many in flight
    remote: bool = False  # answers over the network (calls may overlap; each may cost money)
    mode: str | None = None  # a few words on how it routes right now (e.g. "zero-shot"), shown with results

    @property
    def stats(self) -> CallStats:
        return CallStats()

    @abstractmethod
    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        """Route several examples at once (blocking). Local routers do this in one matrix product."""

    async def aroute(self, example: Example, actions: Sequence[Action]) -> Route:
        """One example; raises RequestFailed (this one) or FatalProviderError (stop). Only if supports_async."""
        raise NotImplementedError(f"{type(self).__name__} has no async route (supports_async is False)")

    def estimate(self, sample: Sequence[Example], actions: Sequence[Action], n: int, *,
                 batch: bool = False) -> Estimate | None:
        """What routing n examples like `sample` will cost; None when routing is free."""
        return None

    def run_params(self) -> dict[str, Any]:
        """Settings of this router worth recording with a job (e.g. samples per question)."""
        return {}

    def prepare(self) -> None:
        """Load now what the first route would (a model, an SDK), so it is not counted as routing time."""
        return None

    def question_generator(self) -> QuestionGenerator | None:
        """The same model writing questions, where the backend can."""
        return None

    def batch_labeler(self) -> BatchLabeler | None:
        """Bulk labeling through the provider's batch API, where it has one."""
        return None

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class Trainer(ABC):
    """Trains a router on an export and reports the job's life to a JobReporter."""

    provider: str
    default_base: str  # the base model when none is asked for
    runs_here: bool = False  # trains in the calling process, to the end (else: submits, then is polled)
    free: bool = False  # costs nothing (no confirmation needed)

    def export_base(self, base: str) -> str | None:
        """The model whose token limits and prices the export is checked against; None: the export's default."""
        return None

    def configure(self, options: dict[str, Any]) -> None:
        """Options of this trainer for one run (e.g. hf's --method); BadInput for what it does not take."""
        if options:
            raise BadInput(f"the {self.provider} trainer takes no {', '.join(sorted(options))} option")

    def check_base(self, store: Any, base: str) -> None:
        """BadInput, before any export or job, where training `base` cannot work (e.g. its endpoint has
        no fine-tuning API)."""
        return None

    def estimate_cost(self, report: dict[str, Any]) -> float | None:
        """USD for training on this export (its report); None when unknown."""
        return 0.0 if self.free else report.get("estimated_cost")

    @abstractmethod
    def describe(self, report: dict[str, Any], base: str, cost: float | None) -> str:
        """One line: what training on this export will do and cost."""

    @abstractmethod
    def start(self, job: Job, files: TrainingFiles, reporter: JobReporter, uploads: UploadLog) -> None:
        """Submit (remote) or run (runs_here) the job. May raise Cancelled."""

    def poll(self, job: Job, reporter: JobReporter) -> None:
        """Bring the job up to date from the provider (one round trip). Only for jobs it submitted."""
        return None

    @abstractmethod
    def cancel(self, job: Job, reporter: JobReporter) -> None:
        """Ask for the job to stop."""

    def close(self) -> None:
        return None


class Backend(ABC):
    """One backend: its name, what it can do, and the objects that do it.

    Register one with an entry point in the group `routelab.providers` (see registry.py),
    or at run time with `routelab.providers.registry.register(backend)`.
    """

    name: str
    description: str = ""
    capabilities: frozenset[str] = frozenset({ROUTE})
    teacher_ids: tuple[str, ...] = ()  # model ids it serves without training (e.g. "local")
    requirement: str = ""  # what it needs to run, e.g. "an OpenAI-compatible endpoint"
    setup_hint: str = ""  # how to provide it, e.g. "set OPENAI_API_KEY"

    def available(self, settings: Settings) -> bool:
        """Can it run here with these settings (a key, a server)?"""
        return True

    def require(self, settings: Settings, what: str) -> None:
        """BadInput saying what is missing, when it cannot run here."""
        if not self.available(settings):
            raise BadInput(f"{what} needs {self.requirement}: {self.setup_hint}")

    def require_model(self, store: Any, model_id: str, settings: Settings, what: str) -> None:
        """BadInput saying what is missing, when `model_id` cannot run here (by default: when the
        backend cannot; a backend with several endpoints checks the one the id names)."""
        self.require(settings, what)

    def default_teacher(self, settings: Settings) -> str:
        """The model it labels with when none is named."""
        return self.teacher_ids[0] if self.teacher_ids else self.name

    def baselines(self, store: Any, settings: Settings) -> list[str]:
        """Models to compare the others with, listed before every other model (e.g. a fine-tune's base)."""
        return []

    def models(self, store: Any, settings: Settings) -> list[str]:
        """Model ids to evaluate by default: what it can run here (its teachers and trained models)."""
        return [*self.teacher_ids, *(m.id for m in store.trained_models(provider=self.name))]

    @abstractmethod
    def router(self, model_id: str, *, store: Any, settings: Settings, trained: TrainedModel | None = None,
               **options: Any) -> Router:
        """A router for `model_id` (one of its teachers, or a model it trained: `trained`)."""

    def trainer(self, settings: Settings) -> Trainer:
        raise NotImplementedError(f"the {self.name} provider does not train")

    def export_model(self, trained: TrainedModel, out: Path) -> dict[str, Any]:
        """Write a trained model where a model server can load it (`routelab export-model`)."""
        raise BadInput(f"the {self.name} provider's models cannot be exported (export-model is for hf models)")

    def generator(self, model_id: str, *, settings: Settings, trained: TrainedModel | None = None,
                  store: Any = None, **options: Any) -> QuestionGenerator:
        raise NotImplementedError(f"the {self.name} provider does not write questions")
