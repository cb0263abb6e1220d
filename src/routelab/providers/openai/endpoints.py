"""Which endpoint a model id names, and the checks a new named endpoint passes.

A model id `NAME/MODEL` means MODEL on the endpoint NAME (`routelab endpoints add`), split
at the first `/`, so `vllm/Qwen/Qwen3-8B` is `Qwen/Qwen3-8B` on `vllm`. An id whose prefix
is no endpoint of the workspace goes, whole, to the default endpoint (OPENAI_BASE_URL,
else OpenAI). A named endpoint's key comes from the variable it names, never from
OPENAI_API_KEY: a local server must not be handed the OpenAI key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from routelab.domain import BadInput
from routelab.store.endpoints import KINDS, Endpoint

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT = "default"  # how the endpoint of ids without a prefix is called in messages and lists
NO_KEY = "no-key"  # sent to a keyless local server: the SDK insists on some key
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEYLIKE = re.compile(r"^(sk-|[A-Za-z0-9]{32,}$)")
AZURE_API_VERSION = "2024-10-21"  # a GA version with structured outputs, files, batches and fine-tuning


@dataclass(frozen=True)
class Target:
    """Where a model id's requests go."""

    model_id: str  # as the user wrote it (stored with proposals)
    model: str  # what the endpoint is asked for (a deployment name on Azure)
    name: str  # the endpoint's name, or DEFAULT
    base_url: str
    kind: str = "openai"
    api_key_env: str | None = "OPENAI_API_KEY"
    api_version: str | None = None
    declared: tuple[tuple[str, object], ...] = ()

    @property
    def key(self) -> str:
        """What the endpoint's capabilities are remembered by: its URL (and Azure's api-version)."""
        url = self.base_url.rstrip("/")
        return f"{url}?api-version={self.api_version}" if self.kind == "azure" else url

    @property
    def official(self) -> bool:
        """OpenAI's own API: every model takes structured outputs and has the Batch and fine-tuning APIs."""
        return self.kind == "openai" and (urlsplit(self.base_url).hostname or "") == "api.openai.com"

    def api_key(self) -> str:
        if not self.api_key_env:
            return NO_KEY
        from routelab.config import secret_from_env

        value = secret_from_env(self.api_key_env)  # registered for redaction, like OPENAI_API_KEY
        if not value:
            raise BadInput(f"endpoint {self.name} needs its key in ${self.api_key_env}, which is not set")
        return value


def split_model_id(model_id: str) -> tuple[str, str] | None:
    name, sep, model = model_id.partition("/")
    return (name, model) if sep and name and model else None


def target(store, model_id: str, settings) -> Target:
    """The endpoint `model_id` names, or the default one."""
    parts = split_model_id(model_id)
    endpoint = store.endpoint(parts[0]) if parts and store is not None else None
    if endpoint is None:
        return Target(model_id=model_id, model=model_id, name=DEFAULT,
                      base_url=settings.openai_base_url or DEFAULT_BASE_URL)
    return Target(model_id=model_id, model=parts[1], name=endpoint.name, base_url=endpoint.base_url,
                  kind=endpoint.kind, api_key_env=endpoint.api_key_env, api_version=endpoint.api_version,
                  declared=tuple(sorted(endpoint.declared.items())))


def default_target(settings) -> Target:
    return Target(model_id="", model="", name=DEFAULT, base_url=settings.openai_base_url or DEFAULT_BASE_URL)


def named_target(endpoint: Endpoint) -> Target:
    return Target(model_id="", model="", name=endpoint.name, base_url=endpoint.base_url, kind=endpoint.kind,
                  api_key_env=endpoint.api_key_env, api_version=endpoint.api_version,
                  declared=tuple(sorted(endpoint.declared.items())))


# ---------------------------------------------------------------------------- a new endpoint


def new_endpoint(name: str, base_url: str, *, kind: str = "openai", api_key_env: str | None = None,
                 api_version: str | None = None, declared: dict | None = None) -> Endpoint:
    """A checked Endpoint, or BadInput saying what is wrong (nothing is stored)."""
    if not NAME.match(name or ""):
        raise BadInput(f"endpoint name {name!r}: use letters, digits, '_', '-' or '.' (no '/': "
                       "a model id NAME/MODEL is split at the first '/')")
    if name == DEFAULT:
        raise BadInput(f"{DEFAULT!r} names the endpoint of model ids without a prefix (OPENAI_BASE_URL); "
                       "choose another name")
    if kind not in KINDS:
        raise BadInput(f"--kind must be one of {', '.join(KINDS)}")
    if api_key_env is not None:
        check_env_name(api_key_env)
    if kind == "azure":
        if not api_key_env:
            raise BadInput("an azure endpoint needs --api-key-env VAR (the variable holding its key)")
        api_version = api_version or AZURE_API_VERSION
    elif api_version:
        raise BadInput("--api-version is for --kind azure only")
    return Endpoint(name=name, base_url=clean_url(base_url, kind), kind=kind, api_key_env=api_key_env,
                    api_version=api_version, declared=dict(declared or {}))


def check_env_name(var: str) -> None:
    if KEYLIKE.match(var):
        raise BadInput("--api-key-env takes the NAME of an environment variable (e.g. VLLM_API_KEY), not a key; "
                       "nothing was stored")
    if not ENV_NAME.match(var):
        raise BadInput(f"--api-key-env {var!r} is not an environment variable name (letters, digits, '_')")


def clean_url(url: str, kind: str = "openai") -> str:
    """The base URL as stored: http(s), a host, no credentials, no query string, no trailing '/'.
    A URL with credentials in it is refused, not stripped: the key would already be in the
    shell history, and silently dropping it would leave a request that fails later."""
    try:
        parts = urlsplit((url or "").strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BadInput(f"--base-url: not a URL: {_shown(url)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"--base-url must be an http(s) URL with a host, e.g. http://127.0.0.1:8000/v1 "
                       f"(got {_shown(url)})")
    if parts.username or parts.password:
        raise BadInput("--base-url carries credentials (user:password@): refused, nothing stored; put the key in "
                       "an environment variable and name it with --api-key-env")
    if parts.query or parts.fragment:
        hint = " (the api-version goes in --api-version)" if "api-version" in parts.query else ""
        raise BadInput(f"--base-url must not have a query string or fragment{hint}: refused, nothing stored "
                       "(a key or token there would be stored with it)")
    path = parts.path.rstrip("/")
    if kind == "azure" and "/openai" in path:
        path = path[: path.index("/openai")]  # the SDK adds /openai/deployments/... itself
    return urlunsplit((parts.scheme, parts.netloc.lower(), path, "", ""))


def _shown(url: str) -> str:
    from routelab.providers.openai.errors import display_url

    return repr(display_url(url or "")) if url else "nothing"
