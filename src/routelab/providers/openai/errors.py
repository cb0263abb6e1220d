"""Reading the SDK's errors, deciding which are worth a retry, and mapping them to ours.

One mapping for every call (chat, files, batches, fine-tuning): 401, 403 and a 429 with
`insufficient_quota` are fatal (every request would fail); 404 of a chat model is fatal
too (the model does not exist there); anything else that is not worth a retry fails that
request. Server messages are scrubbed of the key and of anything that looks like one; a
failure with no answer (refused, timed out) names the endpoint it could not reach, its
credentials removed (display_url).
"""

from __future__ import annotations

import os
import re
import time
from urllib.parse import urlsplit, urlunsplit

from routelab.providers.base import FatalProviderError, ProviderError, RequestFailed
from routelab.redaction import redact

_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|[A-Za-z0-9]{32,})\b")
_TAG = re.compile(r"<[^>]*>")


def scrub(text: str, secret: str | None = None) -> str:
    """A server message made safe to show and store: no key, nothing that looks like one, one line.
    Shortened after scrubbing, so a key cut in half is never left to show."""
    if secret:
        text = text.replace(secret, "***")
    text = _KEYLIKE.sub("***", redact(text))
    return " ".join(text.split())[:300]


def display_url(url: str | None) -> str:
    """A base URL fit for a message: no user:password@, no query string (tokens hide there)."""
    if not url:
        return "the default endpoint (api.openai.com)"
    try:
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:  # "host/v1", "user:pw@host/v1": not a URL urlsplit reads
            return redact(url.split("?")[0].rsplit("@", 1)[-1])
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "the configured OPENAI_BASE_URL"


def not_json(answer: object, *, secret: str | None, base_url: str | None, what: str | None = None) -> RequestFailed:
    """An answer that is not a JSON object (a proxy's or captive portal's page, often echoing the
    request, Authorization header included): one line naming the endpoint, the page's text scrubbed."""
    text = scrub(_TAG.sub(" ", str(answer)), secret)[:120]
    prefix = f"{what}: " if what else ""
    return RequestFailed(f"{prefix}the endpoint {display_url(base_url)} answered with something that is not JSON "
                         f"(a proxy or captive portal page?): {text!r}")


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


def timed_out(exc: BaseException | None) -> bool:
    import openai

    return isinstance(exc, openai.APITimeoutError)


def refused(exc: BaseException | None) -> bool:
    """No connection could be made at all (refused, no route, unknown host): nothing listens there."""
    import openai

    if not isinstance(exc, openai.APIConnectionError) or isinstance(exc, openai.APITimeoutError):
        return False
    cause, depth = exc.__cause__ or exc.__context__, 0
    while cause is not None and depth < 5:  # the transport's ConnectError (httpx's, or the SDK's own copy)
        if type(cause).__name__ == "ConnectError":
            return True
        cause, depth = cause.__cause__ or cause.__context__, depth + 1
    return False


def reason(exc: BaseException | None) -> str:
    """A retry's reason, for the statistics: the HTTP status, or the exception's name."""
    status = status_code(exc)
    return str(status) if status else type(exc).__name__


def _unreachable(exc: BaseException, base_url: str | None) -> str | None:
    """No answer at all: which endpoint, and why (refused, timed out), in a few words."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"no answer from {display_url(base_url)} in time (timed out)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect to {display_url(base_url)}: {_why_not_connected(exc)}"
    return None


def _why_not_connected(exc: BaseException) -> str:
    """The operating system's reason ("Connection refused", "Name or service not known") from the
    deepest OSError below the SDK's error, else the transport's own words."""
    why, link, depth = None, exc.__cause__ or exc.__context__, 0
    while link is not None and depth < 8:
        if isinstance(link, OSError) and link.errno:
            why = os.strerror(link.errno) if link.errno > 0 else (link.strerror or str(link))
        elif why is None and str(link):
            why = str(link)
        link, depth = link.__cause__ or link.__context__, depth + 1
    return scrub(why or "connection failed")


def describe(exc: BaseException, secret: str | None, base_url: str | None = None) -> str:
    """`STATUS CODE: message` (scrubbed), or `ExceptionName: message` when there was no answer."""
    status, code = status_code(exc), error_code(exc)
    if status is None:
        unreachable = _unreachable(exc, base_url)
        if unreachable:
            return unreachable
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
    return RequestFailed(prefix + describe(exc, secret, base_url), status=status, code=code, param=param)


def gave_up(exc: BaseException, tries: int, *, secret: str | None, what: str | None = None,
            base_url: str | None = None) -> RequestFailed:
    prefix = f"{what}: " if what else ""
    return RequestFailed(f"{prefix}gave up after {tries} tries: {describe(exc, secret, base_url)}",
                         status=status_code(exc), code=error_code(exc))
