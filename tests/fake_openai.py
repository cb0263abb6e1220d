"""A fake OpenAI-compatible HTTP server for real-HTTP tests.

Standard library only.  It listens on 127.0.0.1 on an ephemeral port and speaks
enough of the OpenAI REST API (chat completions, models, files, batches,
fine-tuning jobs) for the ``openai`` SDK to be used against it unmodified::

    with FakeOpenAI() as fake:
        client = OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
        ...

Behaviour is controlled with plain attributes that may be changed while the
server is running (``latency``, ``answer``, ``confidence``, ``fault_rate``,
``quota_exhausted``, ...) and with :meth:`FakeOpenAI.fail_next`.

Everything is deterministic for a given ``seed``: ids, injected faults, the
shuffled order of batch output lines.  Long-running objects (batches and
fine-tuning jobs) advance by *poll counting*: every GET of the object moves it
forward, so tests never need to sleep.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeOpenAI", "SUPPORTED_FT_MODELS", "BASE_MODELS"]

SUPPORTED_FT_MODELS = (
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-4o-mini-2024-07-18",
)
BASE_MODELS = ("gpt-4.1", "gpt-4.1-mini-2025-04-14")

REFUSE = "__refuse__"
MALFORMED = "__malformed__"
UNKNOWN = "__unknown__"
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
UNKNOWN_ACTION = "not_a_listed_action"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}
_ERROR_MESSAGES = {
    400: "Bad request.",
    401: "Unauthorized.",
    403: "You are not allowed to perform this request.",
    404: "Not found.",
    409: "Conflict.",
    422: "Unprocessable entity.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout.",
}
_STOPWORDS = frozenset(
    "a an and are as at be but by can could do does for from had has have how i if in into is it its "
    "me my no not of on or our please so than that the their them then there these they this to too "
    "was we were what when where which who why will with would you your yours i'm im want need "
    "just get got some any about also very".split()
) | frozenset(  # prompt boilerplate of "generate questions" requests
    "write generate create produce give list return output make question questions query queries "
    "customer customers user users people person someone might may ask asks asking asked say says "
    "example examples sample samples different diverse distinct realistic plausible varied various "
    "five ten few several many each one two three four json object array string strings format "
    "following like such short long sentence sentences message messages intent intents label "
    "labels action actions category categories only exactly should must".split()
)


class _Close:
    """Sentinel response: close the connection without answering."""


@dataclass
class _Resp:
    status: int
    body: Any = None  # dict/list -> JSON, bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class _FailRule:
    remaining: int
    status: int
    code: str | None
    retry_after: float | None
    delay: float
    path_contains: str


class _ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None, type_: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_ or _ERROR_TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def resp(self) -> _Resp:
        return _Resp(self.status, _error_body(self.message, self.type, self.code, self.param), dict(self.headers))


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _fmt_seconds(value: float) -> str:
    return f"{value:g}"


def _text_of(content: Any) -> str:
    """Text of a message ``content`` (string or list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
        return "\n".join(out)
    return str(content)


def _last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return _text_of(m.get("content"))
    return ""


def default_answer(messages: list[dict], enum: list[str]) -> str:
    """The enum name whose ``_``-separated words occur most often in the last user
    message (case-insensitive); ties go to the alphabetically first name."""
    if not enum:
        return UNKNOWN_ACTION
    words = re.findall(r"[a-z0-9]+", _last_user_text(messages).lower())
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    best, best_score = None, -1
    for name in sorted(enum):
        score = sum(counts.get(w, 0) for w in str(name).lower().split("_") if w)
        if score > best_score:
            best, best_score = name, score
    return str(best)


def default_questions(messages: list[dict]) -> str:
    """Five distinct plausible questions mentioning words of the last user message."""
    text = _last_user_text(messages)
    keywords: list[str] = []
    for w in re.findall(r"[A-Za-z][A-Za-z0-9'-]*", text):
        lw = w.lower().strip("'-")
        if len(lw) >= 3 and lw not in _STOPWORDS and lw not in keywords:
            keywords.append(lw)
    if not keywords:
        keywords = ["account"]
    templates = [
        "How do I update my {w}?",
        "Can you help me with my {w}?",
        "What is the status of my {w}?",
        "Why is my {w} not working?",
        "Where can I find more information about {w}?",
    ]
    questions = [t.format(w=keywords[i % len(keywords)]) for i, t in enumerate(templates)]
    return json.dumps({"questions": questions})


def _tokenize(text: str) -> list[str]:
    """Split text into pseudo tokens that concatenate back to ``text`` exactly."""
    return re.findall(r"\S+\s*|\s+", text)


def _token_item(token: str, logprob: float, top: list[dict] | None = None) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8")),
            "top_logprobs": top if top is not None else []}


def _top_item(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _resolve_ref(schema: dict, node: Any, depth: int = 0) -> Any:
    if not isinstance(node, dict) or depth > 10:
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = schema
        for part in ref[2:].split("/"):
            if not isinstance(target, dict):
                return node
            target = target.get(part)
        return _resolve_ref(schema, target, depth + 1)
    return node


def _enum_of(schema: dict, node: Any, depth: int = 0) -> list[str]:
    node = _resolve_ref(schema, node)
    if not isinstance(node, dict) or depth > 10:
        return []
    if isinstance(node.get("enum"), list):
        return [str(v) for v in node["enum"] if v is not None]
    if "const" in node:
        return [str(node["const"])]
    out: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key) or []:
            for v in _enum_of(schema, sub, depth + 1):
                if v not in out:
                    out.append(v)
    return out


def _action_schema(body: dict) -> tuple[bool, list[str]]:
    """(has an "action" property, its enum) for a json_schema response_format."""
    rf = body.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") != "json_schema":
        return False, []
    js = rf.get("json_schema") or {}
    schema = js.get("schema") if isinstance(js, dict) else None
    if not isinstance(schema, dict):
        return False, []
    root = _resolve_ref(schema, schema)
    props = root.get("properties") if isinstance(root, dict) else None
    if not isinstance(props, dict) or "action" not in props:
        return False, []
    return True, _enum_of(schema, props["action"])


PROFILES: dict[str, dict[str, Any]] = {
    # what servers one meets behind an OpenAI-compatible URL (ENVIRONMENT.md, their docs)
    "openai": {},
    "llama.cpp": {"formats_accepted": {"json_object", "text"}, "format_refusal_status": 500,
                  "apis": set(), "n_supported": False},
    "vllm": {"apis": set()},
    "ollama": {"logprobs_supported": False, "apis": set(), "n_supported": False},
    "azure": {"azure": True},
    "bare": {"formats_accepted": {"text"}, "format_refusal_status": 422, "logprobs_supported": False,
             "apis": set(), "seed_supported": False, "n_supported": False},
}
_CATALOG_LINE = re.compile(r"^- ([^:\n]+?)(?::|$)", re.MULTILINE)


def _catalog_names(messages: list[dict]) -> list[str]:
    """The action names a routing prompt lists ("- name: description" lines of the system message)."""
    system = next((_text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "system"),
                  "")
    if "choose the one action" not in system:
        return []
    return [n.strip() for n in _CATALOG_LINE.findall(system)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40ms delayed-ACK stalls
    server_version = "FakeOpenAI/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence
        pass

    def _dispatch(self) -> None:
        self.server.fake._handle(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # default 5 drops SYNs under concurrent clients (1s retransmit stalls)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client went away etc.; never spam the test output


class FakeOpenAI:
    """Fake OpenAI API server.  See the module docstring."""

    def __init__(self, api_key: str = "test-key-not-secret", latency: float = 0.0, seed: int = 0):
        self.api_key = api_key
        self.latency = latency
        self.seed = seed
        # behaviour knobs
        self.answer: Callable[[list[dict], list[str]], str] | None = None
        self.generate: Callable[[list[dict]], str] | None = None
        self.confidence: float = 0.9
        self.logprobs_supported: bool = True
        self.fault_rate: float = 0.0
        self.quota_exhausted: bool = False
        self.reject_files: bool = False
        self.batch_steps_per_poll: int = 1
        self.ft_total_steps: int = 6
        self.ft_steps_per_poll: int = 1
        self.ft_fail_validation: bool = False
        # server quirks (see PROFILES): what an OpenAI-compatible server that is not OpenAI refuses
        self.formats_accepted: set[str] = {"json_schema", "json_object", "text"}
        self.format_refusal_status: int = 400  # llama.cpp answers 500, others 400 or 422
        self.json_object_schema: bool = True  # json_object may carry a "schema" (llama.cpp enforces it)
        self.apis: set[str] = {"files", "batches", "fine_tuning"}
        self.seed_supported: bool = True
        self.n_supported: bool = True
        self.garbage_200: bool = False  # answer 200 text/html echoing the request (a captive portal)
        self.azure: bool = False  # also answer Azure OpenAI's URL shape (see _azure)
        self.azure_deployments: set[str] | None = None  # None: any deployment name exists
        self.azure_api_versions: list[str] = []  # the api-version of each Azure request
        # observation
        self.requests: list[dict] = []
        self.errors: list[str] = []  # tracebacks of bugs inside the fake (answered 500)
        # state (exposed for inspection; mutate under self._lock only)
        self.files: dict[str, dict] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.fine_tuned_models: list[str] = []
        self._chat_ok: list[dict] = []
        self._fail_rules: list[_FailRule] = []
        self._job_state: dict[str, dict] = {}
        self._batch_state: dict[str, dict] = {}
        self._lock = threading.RLock()
        self._fault_rng = random.Random(seed)
        self._shuffle_rng = random.Random(seed + 1)
        self._id_rng = random.Random(seed + 2)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str = ""
        self.port: int = 0

    @property
    def azure_endpoint(self) -> str:
        """What an Azure resource's endpoint looks like here (the SDK appends /openai/...)."""
        return f"http://127.0.0.1:{self.port}"

    def use_profile(self, name: str) -> FakeOpenAI:
        """Behave like another server kind (PROFILES): refused response formats, missing APIs..."""
        for key, value in PROFILES[name].items():
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAI:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeOpenAI:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ public helpers
    def chat_requests(self) -> list[dict]:
        """Bodies of /chat/completions requests that were answered 200."""
        with self._lock:
            return list(self._chat_ok)

    def fail_next(self, n: int, status: int, *, code: str | None = None, retry_after: float | None = None,
                  delay: float = 0.0, path_contains: str = "/chat/completions") -> None:
        """Answer the next ``n`` requests whose path contains ``path_contains`` with ``status``
        (an OpenAI-style error body).  ``status=0`` closes the connection without answering."""
        if n <= 0:
            return
        with self._lock:
            self._fail_rules.append(_FailRule(n, status, code, retry_after, delay, path_contains))

    # ------------------------------------------------------------------ ids
    def _new_id(self, prefix: str, length: int = 24) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        with self._lock:
            return prefix + "".join(self._id_rng.choice(alphabet) for _ in range(length))

    # ------------------------------------------------------------------ HTTP plumbing
    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = h.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
            return b"".join(chunks)
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length > 0 else b""

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        try:
            raw = self._read_body(h)
        except Exception:
            h.close_connection = True
            return
        split = urlsplit(h.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        headers = {k.lower(): v for k, v in h.headers.items()}
        body: Any = None
        if raw and "json" in headers.get("content-type", "json"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        with self._lock:
            self.requests.append({"method": h.command, "path": path, "query": query, "body": body,
                                  "headers": headers})

        if self.latency and self.latency > 0:
            time.sleep(self.latency)

        try:
            resp = self._respond(h.command, path, query, headers, raw, body)
        except _ApiError as e:
            resp = e.resp()
        except Exception:  # a bug in the fake: answer 500, keep the traceback
            tb = traceback.format_exc()
            with self._lock:
                self.errors.append(tb)
            resp = _Resp(500, _error_body("FakeOpenAI internal error:\n" + tb, "server_error", None))

        if resp is _Close:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(h, resp)

    def _send(self, h: BaseHTTPRequestHandler, resp: _Resp) -> None:
        if isinstance(resp.body, (bytes, bytearray)):
            payload = bytes(resp.body)
        else:
            payload = json.dumps(resp.body).encode("utf-8")
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type)
            h.send_header("Content-Length", str(len(payload)))
            h.send_header("x-request-id", self._new_id("req_", 16))
            h.send_header("openai-processing-ms", "1")
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(payload)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            h.close_connection = True

    def _take_fail_rule(self, path: str) -> _FailRule | None:
        with self._lock:
            for rule in self._fail_rules:
                if rule.path_contains in path:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._fail_rules.remove(rule)
                    return rule
        return None

    # ------------------------------------------------------------------ routing
    def _azure(self, path: str, query: dict, headers: dict, body: Any) -> tuple[str, Any]:
        """Azure OpenAI's URL shape, mapped onto ours: /openai/deployments/{deployment}/chat/completions
        and /openai/{files,batches,fine_tuning}/..., each with ?api-version=..., the key in `api-key`."""
        if headers.get("api-key") != self.api_key:
            raise _ApiError(401, "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                                 "to provide a valid key for an active subscription.", code="401")
        if not query.get("api-version"):
            raise _ApiError(404, "Resource not found", code="404")
        with self._lock:
            self.azure_api_versions.append(query["api-version"])
        parts = [unquote(p) for p in path[len("/openai/"):].split("/") if p]
        if parts[:1] == ["deployments"] and len(parts) >= 2:
            deployment = parts[1]
            if self.azure_deployments is not None and deployment not in self.azure_deployments:
                raise _ApiError(404, "The API deployment for this resource does not exist.",
                                code="DeploymentNotFound")
            if isinstance(body, dict):
                body = {**body, "model": deployment}
            parts = parts[2:]
        return "/v1/" + "/".join(parts), body

    def _respond(self, method: str, path: str, query: dict, headers: dict, raw: bytes, body: Any):
        auth = headers.get("authorization", "")
        if path.startswith("/openai/") and self.azure:
            path, body = self._azure(path, query, headers, body)
        elif auth != f"Bearer {self.api_key}":
            msg = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
                   "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)." if not auth else
                   "Incorrect API key provided. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
            raise _ApiError(401, msg, code="invalid_api_key")

        rule = self._take_fail_rule(path)
        if rule is not None:
            if rule.delay > 0:
                time.sleep(rule.delay)
            if rule.status == 0:
                return _Close
            hdrs = {}
            if rule.retry_after is not None:
                hdrs["retry-after"] = _fmt_seconds(rule.retry_after)
                hdrs["retry-after-ms"] = str(int(round(rule.retry_after * 1000)))
            type_ = _ERROR_TYPES.get(rule.status, "invalid_request_error")
            if rule.code == "insufficient_quota":
                type_ = "insufficient_quota"
            msg = _ERROR_MESSAGES.get(rule.status, f"Injected error {rule.status}.")
            return _Resp(rule.status, _error_body(msg, type_, rule.code), hdrs)

        if self.garbage_200:  # a proxy's or captive portal's page that echoes the request back
            first = sorted(headers.items(), key=lambda kv: kv[0] != "authorization")  # the worst case first
            echoed = "".join(f"<li>{k}: {v}</li>" for k, v in first)
            page = f"<html><body><h1>Welcome</h1><p>{method} {path}</p><ul>{echoed}</ul></body></html>"
            return _Resp(200, page.encode(), content_type="text/html")
        if not path.startswith("/v1/"):
            return self._not_found(method, path)
        parts = [unquote(p) for p in path[len("/v1/"):].split("/") if p]
        api = "fine_tuning" if parts[:1] == ["fine_tuning"] else (parts[0] if parts else "")
        if api in ("files", "batches", "fine_tuning") and api not in self.apis:
            return self._not_found(method, path)

        if parts == ["chat", "completions"] and method == "POST":
            return self._http_chat(body)
        if parts and parts[0] == "models" and method == "GET":
            return self._models("/".join(parts[1:]) or None)
        if parts and parts[0] == "files":
            return self._files(method, parts[1:], query, headers, raw)
        if parts and parts[0] == "batches":
            return self._batches(method, parts[1:], query, body)
        if parts[:2] == ["fine_tuning", "jobs"]:
            return self._ft(method, parts[2:], query, body)
        return self._not_found(method, path)

    @staticmethod
    def _not_found(method: str, path: str) -> _Resp:
        return _Resp(404, _error_body(f"Invalid URL ({method} {path})", "invalid_request_error", None))

    @staticmethod
    def _json_body(body: Any) -> dict:
        if not isinstance(body, dict):
            raise _ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                                 "you aren't using your HTTP library correctly.)")
        return body

    @staticmethod
    def _paginate(items: list[dict], query: dict, default_limit: int = 20) -> dict:
        """Cursor pagination over ``items`` (already in the listing order)."""
        after = query.get("after")
        try:
            limit = int(query.get("limit", default_limit))
        except ValueError:
            raise _ApiError(400, "Invalid limit.", param="limit") from None
        limit = max(1, min(limit, 10000))
        start = 0
        if after:
            ids = [it["id"] for it in items]
            start = ids.index(after) + 1 if after in ids else len(items)
        page = items[start:start + limit]
        return {"object": "list", "data": page, "has_more": start + limit < len(items),
                "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

    # ------------------------------------------------------------------ chat
    def _http_chat(self, body: Any) -> _Resp:
        body = self._json_body(body)
        if self.quota_exhausted:
            raise _ApiError(429, "You exceeded your current quota, please check your plan and billing details. "
                                 "For more information on this error, read the docs: "
                                 "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                            code="insufficient_quota", type_="insufficient_quota")
        if self.fault_rate > 0:
            with self._lock:
                hit = self._fault_rng.random() < self.fault_rate
            if hit:
                raise _ApiError(429, "Rate limit reached for requests on fake-org. Please try again in 10ms.",
                                code="rate_limit_exceeded", type_="requests",
                                headers={"retry-after": "0.01", "retry-after-ms": "10"})
        completion = self._chat(body)
        with self._lock:
            self._chat_ok.append(body)
        return _Resp(200, completion)

    def _chat(self, body: dict) -> dict:
        """The chat completion logic shared by HTTP and batches. Raises _ApiError on invalid input."""
        model = body.get("model")
        if not model or not isinstance(model, str):
            raise _ApiError(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _ApiError(400, "[] is too short - 'messages'" if messages == [] else
                            "Missing required parameter: 'messages'.", param="messages",
                            code="missing_required_parameter" if messages is None else None)
        if body.get("stream"):
            raise _ApiError(400, "FakeOpenAI does not implement streaming.", param="stream")
        want_logprobs = bool(body.get("logprobs"))
        top_n = body.get("top_logprobs")
        if top_n is not None:
            if not isinstance(top_n, int) or not 0 <= top_n <= 20:
                raise _ApiError(400, f"Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, "
                                     f"but got {top_n} instead.", param="top_logprobs", code="integer_above_max_value")
            if not want_logprobs:
                raise _ApiError(400, "Invalid value for 'top_logprobs': you must also set 'logprobs' to true.",
                                param="top_logprobs")
        if want_logprobs and not self.logprobs_supported:
            raise _ApiError(400, "logprobs are not supported with this model", param="logprobs",
                            code="unsupported_parameter")
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1 or n > 128:
            raise _ApiError(400, f"Invalid 'n': expected a value between 1 and 128, got {n}.", param="n")
        if n > 1 and not self.n_supported:
            n = 1  # such servers ignore n and answer once
        if body.get("seed") is not None and not self.seed_supported:
            raise _ApiError(400, "Unrecognized request argument supplied: seed", param="seed")
        rf = body.get("response_format")
        kind = rf.get("type") if isinstance(rf, dict) else "text"
        if kind not in self.formats_accepted:
            raise _ApiError(self.format_refusal_status, f"response_format type '{kind}' is not supported "
                            f"(expected one of: {', '.join(sorted(self.formats_accepted))})",
                            param="response_format")
        if kind == "json_object" and isinstance(rf, dict) and "schema" in rf and not self.json_object_schema:
            raise _ApiError(self.format_refusal_status, "Unrecognized key 'schema' in response_format",
                            param="response_format")
        has_action, enum = _action_schema(body)
        style = "json"
        if not has_action and kind in ("json_object", "text"):
            schema = rf.get("schema") if isinstance(rf, dict) and kind == "json_object" else None
            enum = _enum_of(schema, (schema.get("properties") or {}).get("action")) if isinstance(schema, dict) \
                else _catalog_names(messages)
            has_action = bool(enum)
            style = "json" if kind == "json_object" else "prose"
        choices = []
        completion_tokens = 0
        for index in range(n):
            message: dict = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
            logprobs: dict | None = None
            if has_action:
                fn = self.answer or default_answer
                name = fn(messages, list(enum))
                if name == REFUSE:
                    message["refusal"] = REFUSAL_TEXT
                    toks = _tokenize(REFUSAL_TEXT)
                    completion_tokens += len(toks)
                    if want_logprobs:
                        logprobs = {"content": None, "refusal": [_token_item(t, 0.0) for t in toks]}
                else:
                    if name == MALFORMED:
                        content = 'The action is {"action": '
                        toks = [_token_item(t, 0.0) for t in _tokenize(content)]
                    else:
                        action = UNKNOWN_ACTION if name == UNKNOWN else str(name)
                        content = json.dumps({"action": action}, separators=(",", ":"))
                        toks = self._action_tokens(action, enum, top_n or 0)
                        if style == "prose":  # no structured output: the model wraps its answer
                            content = f"Sure! Here is the routing decision:\n```json\n{content}\n```"
                    message["content"] = content
                    completion_tokens += len(toks)
                    if want_logprobs:
                        logprobs = {"content": toks, "refusal": None}
            else:
                content = self.generate(messages) if self.generate is not None else default_questions(messages)
                content = str(content)
                toks = _tokenize(content)
                completion_tokens += max(1, len(toks))
                message["content"] = content
                if want_logprobs:
                    logprobs = {"content": [_token_item(t, 0.0, [_top_item(t, 0.0)] if top_n else [])
                                            for t in toks], "refusal": None}
            choices.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": "stop"})

        chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        prompt_tokens = chars // 4 + 1
        return {
            "id": self._new_id("chatcmpl-", 29),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fakeopenai",
        }

    def _action_tokens(self, action: str, enum: list[str], top_n: int) -> list[dict]:
        conf = min(max(float(self.confidence), 1e-12), 1.0)
        lp = math.log(conf)
        top: list[dict] = []
        if top_n:
            top.append(_top_item(action, lp))
            others = [e for e in enum if e != action][: top_n - 1]
            rest = 1.0 - conf
            for other in others:
                share = rest / len(others)
                top.append(_top_item(other, math.log(share) if share > 0 else -9999.0))
        return [
            _token_item('{"action":"', 0.0),
            _token_item(action, lp, top),
            _token_item('"}', 0.0),
        ]

    # ------------------------------------------------------------------ models
    def _model_obj(self, mid: str) -> dict:
        owned = "user-fakeopenai" if mid.startswith("ft:") else "system"
        return {"id": mid, "object": "model", "created": 1700000000, "owned_by": owned}

    def _models(self, model_id: str | None) -> _Resp:
        with self._lock:
            ids = list(BASE_MODELS) + list(self.fine_tuned_models)
        if model_id:
            if model_id not in ids:
                raise _ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
            return _Resp(200, self._model_obj(model_id))
        return _Resp(200, {"object": "list", "data": [self._model_obj(m) for m in ids]})

    # ------------------------------------------------------------------ files
    @staticmethod
    def _parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
        m = re.search(r'boundary="?([^";]+)"?', content_type or "")
        if not m:
            raise _ApiError(400, "Invalid multipart/form-data request: missing boundary.")
        delim = b"--" + m.group(1).encode("latin-1")
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in raw.split(delim)[1:]:
            if part.startswith(b"--"):
                break
            if part.startswith(b"\r\n"):
                part = part[2:]
            head, sep, content = part.partition(b"\r\n\r\n")
            if not sep:
                continue
            if content.endswith(b"\r\n"):
                content = content[:-2]
            disp = ""
            for line in head.decode("utf-8", "replace").split("\r\n"):
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-disposition":
                    disp = v
            nm = re.search(r'(?:^|;)\s*name="([^"]*)"', disp)
            fn = re.search(r'(?:^|;)\s*filename="([^"]*)"', disp)
            if nm:
                fields[nm.group(1)] = (fn.group(1) if fn else None, content)
        return fields

    def _store_file(self, filename: str, purpose: str, data: bytes) -> dict:
        fid = self._new_id("file-", 22)
        obj = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed", "status_details": None,
               "expires_at": None}
        with self._lock:
            self.files[fid] = obj
            self.file_bytes[fid] = data
        return obj

    def _get_file(self, fid: str) -> dict:
        with self._lock:
            obj = self.files.get(fid)
        if obj is None:
            raise _ApiError(404, f"No such File object: {fid}", param="id")
        return obj

    def _files(self, method: str, rest: list[str], query: dict, headers: dict, raw: bytes) -> _Resp:
        if not rest and method == "POST":
            if self.reject_files:
                raise _ApiError(400, "Invalid file format. The file could not be processed.",
                                code="invalid_file_format", param="file")
            fields = self._parse_multipart(headers.get("content-type", ""), raw)
            if "purpose" not in fields:
                raise _ApiError(400, "Missing required parameter: 'purpose'.", param="purpose",
                                code="missing_required_parameter")
            if "file" not in fields:
                raise _ApiError(400, "Missing required parameter: 'file'.", param="file",
                                code="missing_required_parameter")
            purpose = fields["purpose"][1].decode("utf-8", "replace").strip()
            filename, data = fields["file"]
            return _Resp(200, self._store_file(filename or "upload", purpose, data))
        if not rest and method == "GET":
            with self._lock:
                items = list(self.files.values())
            if query.get("purpose"):
                items = [f for f in items if f["purpose"] == query["purpose"]]
            if query.get("order", "desc") == "desc":
                items = items[::-1]
            return _Resp(200, self._paginate(items, query, default_limit=10000))
        if len(rest) == 1 and method == "GET":
            return _Resp(200, self._get_file(rest[0]))
        if len(rest) == 1 and method == "DELETE":
            self._get_file(rest[0])
            with self._lock:
                self.files.pop(rest[0], None)
                self.file_bytes.pop(rest[0], None)
            return _Resp(200, {"id": rest[0], "object": "file", "deleted": True})
        if len(rest) == 2 and rest[1] == "content" and method == "GET":
            self._get_file(rest[0])
            with self._lock:
                data = self.file_bytes[rest[0]]
            return _Resp(200, data, content_type="application/octet-stream")
        return self._not_found(method, "/v1/files/" + "/".join(rest))

    # ------------------------------------------------------------------ batches
    def _get_batch(self, bid: str) -> dict:
        with self._lock:
            b = self.batches.get(bid)
        if b is None:
            raise _ApiError(404, f"No batch found with id '{bid}'.", param="batch_id")
        return b

    def _batches(self, method: str, rest: list[str], query: dict, body: Any) -> _Resp:
        if not rest and method == "POST":
            body = self._json_body(body)
            for key in ("input_file_id", "endpoint", "completion_window"):
                if not body.get(key):
                    raise _ApiError(400, f"Missing required parameter: '{key}'.", param=key,
                                    code="missing_required_parameter")
            if body["endpoint"] not in ("/v1/chat/completions", "/v1/responses", "/v1/embeddings",
                                        "/v1/completions"):
                raise _ApiError(400, f"Invalid value for 'endpoint': {body['endpoint']!r}.", param="endpoint")
            if body["completion_window"] != "24h":
                raise _ApiError(400, "Invalid value for 'completion_window': only '24h' is supported.",
                                param="completion_window")
            fid = body["input_file_id"]
            with self._lock:
                fobj = self.files.get(fid)
            if fobj is None:
                raise _ApiError(400, f"Invalid 'input_file_id': '{fid}'. File not found.", param="input_file_id")
            if fobj["purpose"] != "batch":
                raise _ApiError(400, f"Invalid 'input_file_id': '{fid}'. File purpose must be 'batch'.",
                                param="input_file_id")
            now = int(time.time())
            bid = self._new_id("batch_", 24)
            batch = {
                "id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": fid, "completion_window": "24h", "status": "validating",
                "output_file_id": None, "error_file_id": None, "created_at": now,
                "in_progress_at": None, "expires_at": now + 86400, "finalizing_at": None,
                "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
                "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
            }
            with self._lock:
                self.batches[bid] = batch
            return _Resp(200, batch)
        if not rest and method == "GET":
            with self._lock:
                items = list(self.batches.values())[::-1]
            return _Resp(200, self._paginate(items, query))
        if len(rest) == 1 and method == "GET":
            self._get_batch(rest[0])
            with self._lock:
                batch = self.batches[rest[0]]
                for _ in range(max(0, int(self.batch_steps_per_poll))):
                    self._advance_batch(batch)
                return _Resp(200, json.loads(json.dumps(batch)))
        if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            self._get_batch(rest[0])
            with self._lock:
                batch = self.batches[rest[0]]
                if batch["status"] in ("completed", "failed", "expired", "cancelled", "cancelling"):
                    raise _ApiError(409, f"Cannot cancel a batch with status '{batch['status']}'.")
                batch["status"] = "cancelling"
                batch["cancelling_at"] = int(time.time())
                return _Resp(200, json.loads(json.dumps(batch)))
        return self._not_found(method, "/v1/batches/" + "/".join(rest))

    def _advance_batch(self, batch: dict) -> None:
        now = int(time.time())
        status = batch["status"]
        if status == "validating":
            lines, errors = self._validate_batch_input(batch)
            if errors:
                batch.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
                return
            batch["request_counts"]["total"] = len(lines)
            batch.update(status="in_progress", in_progress_at=now)
        elif status == "in_progress":
            batch.update(status="finalizing", finalizing_at=now)
        elif status == "finalizing":
            self._complete_batch(batch)
            batch.update(status="completed", completed_at=now)
        elif status == "cancelling":
            batch.update(status="cancelled", cancelled_at=now)

    def _validate_batch_input(self, batch: dict) -> tuple[list[dict], list[dict]]:
        data = self.file_bytes.get(batch["input_file_id"], b"")
        lines: list[dict] = []
        errors: list[dict] = []
        seen: set[str] = set()
        for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                errors.append({"code": "invalid_json_line", "line": lineno, "param": None,
                               "message": "This line is not parseable as valid JSON."})
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict) or "custom_id" not in obj:
                errors.append({"code": "invalid_request", "line": lineno, "param": None,
                               "message": "Each line must have 'custom_id', 'method', 'url' and 'body'."})
                continue
            if obj.get("url") != batch["endpoint"]:
                errors.append({"code": "mismatched_endpoint", "line": lineno, "param": "url",
                               "message": f"The url {obj.get('url')!r} does not match the batch endpoint "
                                          f"{batch['endpoint']!r}."})
                continue
            cid = str(obj["custom_id"])
            if cid in seen:
                errors.append({"code": "duplicate_custom_id", "line": lineno, "param": "custom_id",
                               "message": f"The custom_id {cid!r} is used more than once."})
                continue
            seen.add(cid)
            lines.append(obj)
        if not lines and not errors:
            errors.append({"code": "empty_file", "line": None, "param": None,
                           "message": "The batch input file is empty."})
        return lines, errors

    def _complete_batch(self, batch: dict) -> None:
        lines, _ = self._validate_batch_input(batch)
        out, err = [], []
        for obj in lines:
            rid = self._new_id("req_", 24)
            try:
                if batch["endpoint"] != "/v1/chat/completions":
                    raise _ApiError(400, f"FakeOpenAI only implements {batch['endpoint']!r} batches for "
                                         "/v1/chat/completions.")
                completion = self._chat(obj["body"])
                out.append({"id": self._new_id("batch_req_", 24), "custom_id": obj["custom_id"],
                            "response": {"status_code": 200, "request_id": rid, "body": completion},
                            "error": None})
            except _ApiError as e:
                err.append({"id": self._new_id("batch_req_", 24), "custom_id": obj["custom_id"],
                            "response": {"status_code": e.status, "request_id": rid,
                                         "body": _error_body(e.message, e.type, e.code, e.param)},
                            "error": None})
        self._shuffle_rng.shuffle(out)
        self._shuffle_rng.shuffle(err)
        if out:
            data = "".join(json.dumps(line) + "\n" for line in out).encode("utf-8")
            batch["output_file_id"] = self._store_file(f"{batch['id']}_output.jsonl", "batch_output", data)["id"]
        if err:
            data = "".join(json.dumps(line) + "\n" for line in err).encode("utf-8")
            batch["error_file_id"] = self._store_file(f"{batch['id']}_error.jsonl", "batch_output", data)["id"]
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}

    # ------------------------------------------------------------------ fine-tuning
    def _get_job(self, jid: str) -> dict:
        with self._lock:
            job = self.jobs.get(jid)
        if job is None:
            raise _ApiError(404, f"Could not find fine tune job: {jid}", param="fine_tune_id")
        return job

    def _ft_event(self, jid: str, message: str, *, level: str = "info", type_: str = "message",
                  data: dict | None = None) -> None:
        ev = {"id": self._new_id("ftevent-", 24), "object": "fine_tuning.job.event",
              "created_at": int(time.time()), "level": level, "message": message, "data": data or {},
              "type": type_}
        self._job_state[jid]["events"].append(ev)

    def _ft(self, method: str, rest: list[str], query: dict, body: Any) -> _Resp:
        if not rest and method == "POST":
            return _Resp(200, self._ft_create(self._json_body(body)))
        if not rest and method == "GET":
            with self._lock:
                items = list(self.jobs.values())[::-1]
                items = json.loads(json.dumps(items))
            return _Resp(200, self._paginate(items, query))
        if not rest:
            return self._not_found(method, "/v1/fine_tuning/jobs")
        jid = rest[0]
        self._get_job(jid)
        with self._lock:
            job = self.jobs[jid]
            state = self._job_state[jid]
            if len(rest) == 1 and method == "GET":
                for _ in range(max(0, int(self.ft_steps_per_poll))):
                    self._advance_job(job, state)
                return _Resp(200, json.loads(json.dumps(job)))
            if rest[1:] == ["cancel"] and method == "POST":
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    raise _ApiError(400, f"Job {jid} has already {job['status']}, cannot cancel.",
                                    code="invalid_job_status")
                job.update(status="cancelled", finished_at=int(time.time()), estimated_finish=None)
                self._ft_event(jid, "Fine-tuning job cancelled")
                return _Resp(200, json.loads(json.dumps(job)))
            if rest[1:] == ["events"] and method == "GET":
                items = json.loads(json.dumps(state["events"][::-1]))
                return _Resp(200, self._paginate(items, query))
            if rest[1:] == ["checkpoints"] and method == "GET":
                items = json.loads(json.dumps(state["checkpoints"][::-1]))
                page = self._paginate(items, query, default_limit=10)
                return _Resp(200, page)
        return self._not_found(method, "/v1/fine_tuning/jobs/" + "/".join(rest))

    def _ft_create(self, body: dict) -> dict:
        model = body.get("model")
        with self._lock:
            known_ft = model in self.fine_tuned_models
        if not model:
            raise _ApiError(400, "Missing required parameter: 'model'.", param="model",
                            code="missing_required_parameter")
        if model not in SUPPORTED_FT_MODELS and not known_ft:
            raise _ApiError(400, f"Model {model} is not available for fine-tuning or does not exist.",
                            param="model", code="model_not_available")
        tf = body.get("training_file")
        if not tf:
            raise _ApiError(400, "Missing required parameter: 'training_file'.", param="training_file",
                            code="missing_required_parameter")
        for key in ("training_file", "validation_file"):
            fid = body.get(key)
            if fid is None:
                continue
            with self._lock:
                fobj = self.files.get(fid)
            if fobj is None:
                raise _ApiError(400, f"invalid {key}: {fid}", param=key, code="invalid_request_error")
            if fobj["purpose"] != "fine-tune":
                raise _ApiError(400, f"File {fid} has purpose '{fobj['purpose']}', expected 'fine-tune'.",
                                param=key, code="invalid_file_purpose")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise _ApiError(400, "Invalid 'suffix': string too long. Expected a string with maximum length 64.",
                            param="suffix", code="string_above_max_length")
        method = body.get("method") if isinstance(body.get("method"), dict) else None
        hp = dict(body.get("hyperparameters") or {})
        mtype = "supervised"
        if method:
            mtype = method.get("type", "supervised")
            sub = method.get(mtype) or {}
            hp.update(sub.get("hyperparameters") or {})
        requested = {k: hp.get(k, "auto") for k in ("n_epochs", "batch_size", "learning_rate_multiplier")}
        jid = self._new_id("ftjob-", 24)
        seed = body.get("seed")
        if seed is None:
            seed = self._id_rng.randrange(1, 2**31)
        job = {
            "id": jid, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
            "fine_tuned_model": None, "finished_at": None, "hyperparameters": dict(requested),
            "model": model, "organization_id": "org-fakeopenai", "result_files": [], "seed": seed,
            "status": "validating_files", "trained_tokens": None, "training_file": tf,
            "validation_file": body.get("validation_file"), "estimated_finish": None,
            "integrations": body.get("integrations") or [], "metadata": body.get("metadata"),
            "user_provided_suffix": suffix,
            "method": {"type": mtype, mtype: {"hyperparameters": dict(requested)}},
        }
        with self._lock:
            self.jobs[jid] = job
            self._job_state[jid] = {"events": [], "checkpoints": [], "step": 0, "requested": requested,
                                    "losses": []}
            self._ft_event(jid, f"Created fine-tuning job: {jid}")
            self._ft_event(jid, f"Validating training file: {tf}" +
                           (f" and validation file: {job['validation_file']}" if job["validation_file"] else ""))
        return json.loads(json.dumps(job))

    def _training_file_problem(self, job: dict) -> str | None:
        data = self.file_bytes.get(job["training_file"], b"")
        lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        if not lines:
            return "Training file is empty."
        if job["method"]["type"] != "supervised":
            return None
        for i, line in enumerate(lines, start=1):
            try:
                obj = json.loads(line)
            except ValueError:
                return f"Invalid file format. Line {i} is not valid JSON."
            if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
                return f"Invalid file format. Line {i}, key \"messages\": missing or not a list."
        return None

    def _advance_job(self, job: dict, state: dict) -> None:
        jid = job["id"]
        now = int(time.time())
        status = job["status"]
        total = max(1, int(self.ft_total_steps))
        if status == "validating_files":
            problem = "Simulated validation failure (ft_fail_validation=True)." if self.ft_fail_validation \
                else self._training_file_problem(job)
            if problem:
                msg = f"The job failed due to an invalid training file. {problem}"
                job.update(status="failed", finished_at=now,
                           error={"code": "invalid_training_file", "message": msg, "param": "training_file"})
                self._ft_event(jid, msg, level="error")
                return
            job["status"] = "queued"
            self._ft_event(jid, "Files validated, moving job to queued state")
        elif status == "queued":
            req = state["requested"]
            resolved = {
                "n_epochs": req["n_epochs"] if isinstance(req["n_epochs"], int) else 3,
                "batch_size": req["batch_size"] if isinstance(req["batch_size"], int) else 1,
                "learning_rate_multiplier": req["learning_rate_multiplier"]
                if isinstance(req["learning_rate_multiplier"], (int, float)) else 2.0,
            }
            job["hyperparameters"] = dict(resolved)
            job["method"][job["method"]["type"]] = {"hyperparameters": dict(resolved)}
            job["status"] = "running"
            job["estimated_finish"] = now + 60
            state["total_steps"] = total
            self._ft_event(jid, "Fine-tuning job started")
        elif status == "running":
            total = state.get("total_steps", total)
            if state["step"] < total:
                state["step"] += 1
                i = state["step"]
                has_valid = bool(job["validation_file"])
                train_loss = round(2.0 * (0.72 ** i), 4)
                valid_loss = round(train_loss * 1.08 + 0.02, 4) if has_valid else None
                train_acc = round(min(0.99, 1.0 - train_loss / 2.6), 4)
                valid_acc = round(min(0.99, 1.0 - valid_loss / 2.6), 4) if has_valid else None
                metrics = {"step": i, "train_loss": train_loss, "valid_loss": valid_loss, "total_steps": total,
                           "train_mean_token_accuracy": train_acc, "valid_mean_token_accuracy": valid_acc}
                state["losses"].append(metrics)
                text = f"Step {i}/{total}: training loss={train_loss:.4f}"
                if has_valid:
                    text += f", validation loss={valid_loss:.4f}"
                self._ft_event(jid, f"Step {i}/{total} metrics", type_="metrics", data=metrics)
                self._ft_event(jid, text)
                n_epochs = job["hyperparameters"]["n_epochs"]
                epoch_steps = sorted({max(1, round(total * e / n_epochs)) for e in range(1, n_epochs + 1)})
                if i in epoch_steps:
                    state.setdefault("pending_ckpts", []).append(metrics)
                return
            # all steps done -> succeeded
            base, suffix = job["model"], job["user_provided_suffix"] or "routelab"
            if base.startswith("ft:"):
                base = base.split(":")[1]
            short = self._new_id("", 8)
            ft_model = f"ft:{base}:{suffix}:{short}"
            for m in state.get("pending_ckpts", []):
                step = m["step"]
                state["checkpoints"].append({
                    "id": self._new_id("ftckpt_", 24), "object": "fine_tuning.job.checkpoint",
                    "created_at": now, "fine_tuned_model_checkpoint": f"{ft_model}:ckpt-step-{step}",
                    "fine_tuning_job_id": jid, "step_number": step,
                    "metrics": {"step": step, "train_loss": m["train_loss"],
                                "train_mean_token_accuracy": m["train_mean_token_accuracy"],
                                "valid_loss": m["valid_loss"],
                                "valid_mean_token_accuracy": m["valid_mean_token_accuracy"],
                                "full_valid_loss": m["valid_loss"],
                                "full_valid_mean_token_accuracy": m["valid_mean_token_accuracy"]},
                })
                self._ft_event(jid, f"Checkpoint created at step {step}")
            csv = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n" + "".join(
                f"{m['step']},{m['train_loss']},{m['train_mean_token_accuracy']},"
                f"{'' if m['valid_loss'] is None else m['valid_loss']},"
                f"{'' if m['valid_mean_token_accuracy'] is None else m['valid_mean_token_accuracy']}\n"
                for m in state["losses"])
            rf = self._store_file("step_metrics.csv", "fine-tune-results", csv.encode())
            tokens = max(1, len(self.file_bytes.get(job["training_file"], b"")) // 4)
            job.update(status="succeeded", finished_at=now, fine_tuned_model=ft_model, estimated_finish=None,
                       result_files=[rf["id"]], trained_tokens=tokens * job["hyperparameters"]["n_epochs"])
            self.fine_tuned_models.append(ft_model)
            self._ft_event(jid, f"New fine-tuned model created: {ft_model}")
            self._ft_event(jid, "The job has successfully completed")
