"""The contract every backend keeps, run against each one the registry lists (and a plugin
registered at run time): what it declares, it does; what it does not declare, it refuses clearly.

The OpenAI backend runs against the fake server (real HTTP); the local one offline.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points

import pytest

from routelab.config import Settings
from routelab.domain import BadInput, JobStatus
from routelab.providers import registry
from routelab.providers.base import BATCH, GENERATE, ROUTE, TRAIN, Backend, CallStats, Estimate, Route
from routelab.services.batch_labeling import label_batch
from routelab.services.finetune import FinetuneOptions, plan_finetune, providers, start_finetune
from routelab.services.generation import generate
from routelab.services.jobs import JobService
from routelab.services.labeling import label
from routelab.store import ExampleFilter
from tests.keyword_backend import KeywordBackend

CAPABILITIES = {ROUTE, TRAIN, GENERATE, BATCH}
BACKENDS = [*registry.names(), "keyword"]  # every installed backend, and one registered at run time


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    """The backend under test, with what it needs to run here (the fake server for openai)."""
    if request.param == "keyword":
        registry.register(KeywordBackend())
        request.addfinalizer(lambda: registry.unregister("keyword"))
    if request.param == "openai":
        request.getfixturevalue("fake_openai")
    b = registry.get(request.param)
    if not b.available(Settings()):
        pytest.skip(f"{b.name} cannot run here: it needs {b.requirement}")
    if request.param == "hf":  # no Hub here: a tiny model made on the fly is its base (and zero-shot encoder)
        request.getfixturevalue("monkeypatch").setenv("ROUTELAB_HF_BASE_MODEL", str(request.getfixturevalue("hf_encoder")))
    return b


def _teacher(store, b: Backend):
    settings = Settings()
    return registry.router(store, b.default_teacher(settings), settings, provider=b.name)


def test_built_ins_register_through_entry_points():
    found = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert found["openai"] == "routelab.providers.openai.backend:OpenAIBackend"
    assert found["local"] == "routelab.providers.local.backend:LocalBackend"
    assert found["hf"] == "routelab.providers.hf.backend:HFBackend"  # registered whether or not torch is installed
    assert {"openai", "local", "hf"} <= set(registry.names()) and registry.load_errors() == {}


def test_declares_a_name_and_known_capabilities(backend):
    assert backend.name and registry.get(backend.name) is backend
    assert ROUTE in backend.capabilities and backend.capabilities <= CAPABILITIES
    assert backend.default_teacher(Settings())


def test_router_routes_a_batch_onto_the_catalog(backend, demo_store):
    router = _teacher(demo_store, backend)
    actions = demo_store.actions()
    names = {a.name for a in actions}
    examples = demo_store.page(ExampleFilter(split="test"), limit=12)
    routes = router.route_batch(examples, actions)
    assert len(routes) == len(examples) and all(isinstance(r, Route) for r in routes)
    for r in routes:
        assert (r.valid and r.action in names) or (not r.valid and r.action is None)
        assert r.cost >= 0 and r.tokens_in >= 0
    assert any(r.valid for r in routes)
    assert router.provider == backend.name and isinstance(router.prompt_version, str)
    assert isinstance(router.stats, CallStats) and isinstance(router.run_params(), dict)
    router.close()


def test_async_routing_where_declared(backend, demo_store):
    router = _teacher(demo_store, backend)
    example = demo_store.page(ExampleFilter(split="test"), limit=1)[0]
    if not router.supports_async:
        with pytest.raises(NotImplementedError):
            asyncio.run(router.aroute(example, demo_store.actions()))
        return

    async def one() -> Route:
        try:
            return await router.aroute(example, demo_store.actions())
        finally:
            await router.aclose()

    route = asyncio.run(one())
    assert route.valid and route.latency_ms is not None


def test_estimate_is_a_cost_or_free(backend, demo_store):
    router = _teacher(demo_store, backend)
    sample = demo_store.page(limit=5)
    estimate = router.estimate(sample, demo_store.actions(), 100)
    if estimate is not None:
        assert isinstance(estimate, Estimate) and estimate.n == 100 and estimate.tokens_in > 0
        assert estimate.model == router.model and estimate.cost >= 0


def test_labels_through_the_service(backend, store):
    from routelab.domain import NewExample

    store.add_examples([NewExample(text=t) for t in ("Can I see my payslip?", "Book a holiday for me",
                                                     "What is the leave policy?", "I want to escalate this")])
    router = _teacher(store, backend)
    result = label(store, router, concurrency=2)
    assert result.labelled == 4 and result.remaining == 0
    props = store.proposals_for(router.model)
    assert len(props) == 4 and {p.prompt_version for p in props.values()} == {router.prompt_version}
    job = store.job(result.job_id)
    assert job.provider == backend.name and job.status == JobStatus.SUCCEEDED


def test_generates_questions_where_declared(backend, store):
    settings = Settings()
    model = backend.default_teacher(settings)
    if GENERATE not in backend.capabilities:
        with pytest.raises(BadInput, match="no generative model"):
            registry.generator(store, model, settings)
        assert _teacher(store, backend).question_generator() is None
        return
    result = generate(store, registry.generator(store, model, settings), per_action=2, actions=["get_payslip"])
    assert 0 < result.added <= 2 and store.jobs(kind="generate")[0].provider == backend.name


def test_batch_labels_where_declared(backend, store):
    from routelab.domain import NewExample

    store.add_examples([NewExample(text=f"question {i} about my payslip") for i in range(5)])
    router = _teacher(store, backend)
    if BATCH not in backend.capabilities:
        assert router.batch_labeler() is None
        with pytest.raises(BadInput, match="batch API"):
            label_batch(store, router)
        return
    result = label_batch(store, router, poll_interval=0)
    assert result.status == "succeeded" and result.labelled == 5
    assert store.jobs(kind="batch")[0].status == JobStatus.SUCCEEDED


def test_trains_where_declared_and_the_model_routes(backend, demo_store):
    settings = Settings()
    if TRAIN not in backend.capabilities:
        assert backend.name not in providers()
        with pytest.raises(BadInput, match="does not train"):
            registry.trainer(backend.name, settings)
        return
    assert backend.name in providers()  # what the CLI's --provider and the Jobs pane offer
    plan = plan_finetune(demo_store, FinetuneOptions(provider=backend.name), settings)
    assert plan.summary and (plan.free or plan.estimated_cost is None or plan.estimated_cost > 0)
    job = start_finetune(demo_store, plan, settings)
    assert job.provider == backend.name and isinstance(job.status, JobStatus)
    svc = JobService(demo_store, settings)
    seen = []
    done = svc.follow(job.id, interval=0.0, sleep=lambda s: None, on_event=seen.append)
    assert done.status == JobStatus.SUCCEEDED and seen, done
    model_id = done.result["fine_tuned_model"]
    trained = demo_store.trained_model(model_id)
    assert trained.provider == backend.name and trained.job_id == job.id
    assert registry.resolve(demo_store, model_id)[0] is backend  # the backend that trained it serves it
    test = demo_store.page(ExampleFilter(split="test"), limit=10)
    routes = registry.router(demo_store, model_id, settings).route_batch(test, demo_store.actions())
    assert len(routes) == len(test) and any(r.valid for r in routes)


def test_a_started_job_can_be_cancelled(backend, demo_store):
    settings = Settings()
    if TRAIN not in backend.capabilities:
        pytest.skip(f"{backend.name} does not train")
    svc = JobService(demo_store, settings)
    plan = plan_finetune(demo_store, FinetuneOptions(provider=backend.name), settings)
    trainer = registry.trainer(backend.name, settings)

    def cancel_once_running(ev) -> None:  # a trainer that runs here is cancelled while it runs
        current = demo_store.job(ev.job_id)
        if trainer.runs_here and current.status == JobStatus.RUNNING:
            svc.cancel(ev.job_id)

    job = start_finetune(demo_store, plan, settings, on_event=cancel_once_running)
    if not job.status.terminal:  # one that runs at the provider is cancelled there
        svc.cancel(job.id)
        job = svc.follow(job.id, interval=0.0, sleep=lambda s: None)
    assert job.status == JobStatus.CANCELLED
    assert not [m for m in demo_store.trained_models(provider=backend.name) if m.job_id == job.id]


def test_an_unknown_provider_is_bad_input(store):
    with pytest.raises(BadInput, match="unknown provider 'nope'"):
        registry.get("nope")
    with pytest.raises(BadInput, match="not a local model"):
        registry.router(store, "gpt-4.1", Settings(), provider="local")
