"""The one place secrets are removed from text: below every layer, importing nothing of routelab.

Two things go: the secret values this process knows (config registers every key it reads,
and the credentials of a base URL), and anything that looks like a credential whoever it
belongs to (a bearer token, an `sk-...` key, an `api-key: ...` header, `user:pass@` in a
URL, a long random string). The store passes what jobs record through `redact`, and so do
the CLI's stdout and stderr: a server's page echoing our Authorization header, or a
message built from a URL with a password, is cleaned there even if a caller forgot to.

The patterns are tuned to leave ordinary text alone (hex digests, model and job ids,
file paths, "a basic question about bearer bonds"): redaction runs on what operators
read, so it must not eat their words.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote

MASK = "***"
MIN_SECRET = 8  # shorter values ("EMPTY", "ollama": local servers' dummy keys) would mask ordinary words

_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()  # longest first, so a secret containing another goes whole
_lock = threading.Lock()

# user:password@ (or a bare token@) in any URL
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@]+@")
# header / parameter / JSON key style: api-key: X, "api_key": "X", x-api-key=X, authorization: Bearer X
_NAMED = re.compile(
    r"(?i)\b((?:x-)?api[-_]?key|(?:proxy-)?authorization|access[-_]?token|refresh[-_]?token|id[-_]token"
    r"|client[-_]?secret|api[-_]?secret|secret[-_]?key)"
    r"([\"']?\s*[:=]\s*[\"']?)(?!(?:bearer\s+|basic\s+|token\s+)?\*\*\*)((?:bearer\s+|basic\s+|token\s+)?)"
    r"[^\s\"'&,;<>]+"
)
_NAMED_WORDS = ("key", "authorization", "token", "secret")
# password=X only with "=" (a form or query string): "my password: help" is a question, not a header
_PASSWORD = re.compile(r"(?i)\b(passw(?:or)?d|pwd)([\"']?\s*=\s*[\"']?)(?!\*\*\*)[^\s\"'&,;<>]+")
# Bearer / Basic credentials: the token must have a digit or a token character, so prose survives
_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)(?=[\w.~+/=\-]*[0-9_.~+/=\-])(?!\*\*\*)[\w.~+/=\-]{8,}")
# well-known key shapes: OpenAI/Anthropic sk-..., Stripe, GitHub, Hugging Face, Slack, AWS, Google
_PREFIXED = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:sk|rk|pk)-[A-Za-z0-9_\-*]{8,}|sk_(?:live|test)_[A-Za-z0-9]{10,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|hf_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{30,})"
)
_LONG = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{32,}(?![A-Za-z0-9_\-])")


def register_secret(value: str | None) -> None:
    """Remember a secret value (an API key, a password) so that `redact` removes it anywhere."""
    global _ordered
    if not value or len(value) < MIN_SECRET:
        return
    with _lock:
        new = {value, quote(value, safe="")} - _secrets  # also as it appears inside a URL
        if new:
            _secrets.update(new)
            _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def _key_like(m: re.Match) -> str:
    """A long run of key characters that reads as random (upper, lower and digits, changing
    class often), unlike a hex digest, a snake_case name or an id with a short random tail."""
    s = m.group()
    alnum = [c for c in s if c.isalnum()]
    if not (any(c.isupper() for c in alnum) and any(c.islower() for c in alnum) and any(c.isdigit() for c in alnum)):
        return s
    kinds = ["u" if c.isupper() else "l" if c.islower() else "d" for c in alnum]
    changes = sum(a != b for a, b in zip(kinds, kinds[1:]))
    return MASK if changes >= 0.3 * len(alnum) else s


def redact(text: str) -> str:
    """`text` without any known secret or anything credential-shaped."""
    if not text:
        return text
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    lower = text.lower()  # cheap tests first: most text has none of these words (a 10 MB JSON dump...)
    if "@" in text and "://" in text:
        text = _URL_USERINFO.sub(r"\1", text)
    if any(word in lower for word in _NAMED_WORDS):
        text = _NAMED.sub(rf"\1\2\3{MASK}", text)
    if "pass" in lower or "pwd" in lower:
        text = _PASSWORD.sub(rf"\1\2{MASK}", text)
    if "bearer" in lower or "basic" in lower:
        text = _SCHEME.sub(rf"\1\2{MASK}", text)
    text = _PREFIXED.sub(MASK, text)
    return _LONG.sub(_key_like, text)


def redact_values(value):
    """Every string inside a JSON-like value (dicts, lists) redacted; other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(v) for v in value]
    return value
