"""Reading the SDK's errors, deciding which are worth a retry, and mapping them to ours.

One mapping for every call (chat, files, batches, fine-tuning): 401, 403 and a 429 with
`insufficient_quota` are fatal (every request would fail); 404 of a chat model is fatal
too (the model does not exist there); anything else that is not worth a retry fails that
request. Server messages are scrubbed of the key and of anything that looks like one.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit, urlunsplit

from routelab.providers.base import FatalProviderError, ProviderError, RequestFailed

_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|[A-Za-z0-9]{32,})\b")


def scrub(text: str, secret: str | None = None) -> str:
    """A server message made safe to show and store: no key, nothing that looks like one, one line."""
    if secret:
        text = text.replace(secret, "***")
    text = _KEYLIKE.sub("***", text)
    return " ".join(text.split())[:300]


def display_url(url: str) -> str:
    """A base URL fit for a message: no user:password@, no query string (tokens hide there)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "the configured OPENAI_BASE_URL"


def status_code(exc: BaseException | None) -> int | None:
    return getattr(exc, "status_code", None)


def _error_body(exc: BaseException) -> dict:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner
    return {}


def error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    body = _error_body(exc)
    return body.get("code") or body.get("type")


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's requested wait, from retry-after-ms or retry-after (seconds or an HTTP date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


def is_retryable(exc: BaseException | None) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    status = status_code(exc)
    if status == 429:
        return error_code(exc) != "insufficient_quota"
    return status in (408, 409) or (status is not None and status >= 500)


def reason(exc: BaseException | None) -> str:
    """A retry's reason, for the statistics: the HTTP status, or the exception's name."""
    status = status_code(exc)
    return str(status) if status else type(exc).__name__


def describe(exc: BaseException, secret: str | None) -> str:
    """`STATUS CODE: message` (scrubbed), or `ExceptionName: message` when there was no answer."""
    status, code = status_code(exc), error_code(exc)
    message = _error_body(exc).get("message") or getattr(exc, "message", None) or str(exc) or type(exc).__name__
    message = scrub(str(message), secret)
    if status is None:
        return f"{type(exc).__name__}: {message}"
    return f"{status}{' ' + code if code else ''}: {message}"


def to_error(exc: BaseException, *, secret: str | None, base_url: str | None, model: str | None = None,
             what: str | None = None, key_env: str = "OPENAI_API_KEY") -> ProviderError:
    """Our error for an SDK error that will not be retried (any more). `what` says which call it was
    (files, jobs...); without it the call was a chat completion of `model`."""
    status, code, param = status_code(exc), error_code(exc), _error_body(exc).get("param")
    where = f" at {display_url(base_url)}" if base_url else ""
    prefix = f"{what}: " if what else ""
    fatal = None
    if status == 401:
        fatal = f"the OpenAI-compatible API{where} rejected the API key (401): check {key_env}"
    elif status == 403:
        fatal = (f"the API key is not allowed to use {model or 'this endpoint'}{where} (403 permission denied): "
                 "check the key's project and model access")
    elif status == 429 and code == "insufficient_quota":
        fatal = "the API account has no quota left (429 insufficient_quota): check the plan and billing"
    elif status == 404 and what is None and model:
        fatal = f"model {model!r} not found{where} (404): check --model / ROUTELAB_TEACHER"
    if fatal:
        return FatalProviderError(prefix + fatal, status=status, code=code, param=param)
    return RequestFailed(prefix + describe(exc, secret), status=status, code=code, param=param)


def gave_up(exc: BaseException, tries: int, *, secret: str | None, what: str | None = None) -> RequestFailed:
    prefix = f"{what}: " if what else ""
    return RequestFailed(f"{prefix}gave up after {tries} tries: {describe(exc, secret)}",
                         status=status_code(exc), code=error_code(exc))
