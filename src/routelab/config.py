"""Settings from the environment (pydantic-settings), in one place.

Secrets are read here and nowhere else, and are never written anywhere: the API key
is a SecretStr so it does not show up in a repr, a log line or an error message, and
every secret value read (the key, the credentials of a base URL) is registered with
`routelab.redaction`, so that whatever text carries one (a server's echo of our request)
is cleaned before it is stored or shown. Code reading another key variable (a named
endpoint's `--api-key-env`) reads it with `secret_from_env`, which does the same.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from routelab.redaction import register_secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTELAB_", extra="ignore")

    data_dir: Path | None = None  # where `routelab demo` keeps its workspace
    teacher: str = "gpt-4.1"  # the OpenAI teacher model
    spend_limit: float = 5.0  # USD: above this estimate, ask before spending
    hf_base_model: str | None = None  # the hf trainer's base (default per method) and hf-zero-shot's encoder
    hf_method: str = "classifier"  # what the hf trainer does when no --method is given (the Jobs pane)
    hf_device: str = "auto"  # where hf models route: auto (the GPU when there is one), cpu, cuda
    gpu_price: float = 2.5  # USD per GPU-hour: what an hf run on a (rented) GPU costs
    gpu_tflops: float = 100.0  # effective TFLOP/s of a rented GPU, for the projection shown on a CPU
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")

    def model_post_init(self, __context: Any) -> None:
        if self.openai_api_key is not None:
            register_secret(self.openai_api_key.get_secret_value())
        register_url_credentials(self.openai_base_url)

    @property
    def has_openai(self) -> bool:
        return bool(self.openai_api_key and self.openai_api_key.get_secret_value())

    def demo_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        from platformdirs import user_data_dir

        return Path(user_data_dir("routelab", appauthor=False))


def settings() -> Settings:
    return Settings()


def secret_from_env(name: str) -> str | None:
    """A secret from the environment (an API key variable), registered for redaction."""
    value = os.environ.get(name) or None
    register_secret(value)
    return value


def register_url_credentials(url: str | None) -> None:
    """The password of a user:password@ URL, and the Basic credentials httpx makes of it, are secrets."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        register_secret(unquote(password))
        register_secret(password)
    if user:
        userinfo = f"{unquote(user)}:{unquote(password or '')}"
        register_secret(base64.b64encode(userinfo.encode()).decode())
