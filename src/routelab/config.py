"""Settings from the environment (pydantic-settings), in one place.

Secrets are read here and nowhere else, and are never written anywhere: the API key
is a SecretStr so it does not show up in a repr, a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTELAB_", extra="ignore")

    db: Path = Path("routelab.db")
    data_dir: Path | None = None  # where `routelab demo` keeps its workspace
    teacher: str = "gpt-4.1"  # the OpenAI teacher model
    spend_limit: float = 5.0  # USD: above this estimate, ask before spending
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")

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
