"""One typed configuration, read from a TOML file and environment variables.

Precedence (highest first): keyword arguments, environment variables
(``SHELFRANK_<SECTION>__<KEY>``, e.g. ``SHELFRANK_STORE__DATA_DIR``), the TOML file
(``$SHELFRANK_CONFIG`` or ``./shelfrank.toml``), defaults.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Scale = Literal["tiny", "small", "standard"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Section):
    data_dir: Path = Field(Path("shelfrank-data"), description="Folder holding the DuckDB store and rejects.")
    database_file: str = Field("shelfrank.duckdb", description="DuckDB file name inside data_dir.")
    memory_limit: str = Field("4GB", description="DuckDB memory limit.")
    threads: int = Field(2, ge=1, description="DuckDB worker threads.")

    @property
    def database_path(self) -> Path:
        return self.data_dir / self.database_file

    @property
    def rejects_dir(self) -> Path:
        return self.data_dir / "rejects"


class SimulateConfig(_Section):
    scale: Scale = Field("small", description="Default simulator scale.")
    seed: int = Field(7, description="Default random seed.")


# Set only while load_settings(config_file=...) builds a Settings; a ContextVar keeps
# concurrent callers (tests, the service) from seeing each other's file.
_config_file_override: ContextVar[Path | None] = ContextVar("shelfrank_config_file", default=None)


class TrainConfig(_Section):
    test_days: float = Field(3.0, gt=0, description="Days at the end of the log held out for evaluation.")
    max_train_requests: int = Field(4_000, ge=1, description="Whole requests sampled for training.")
    max_test_requests: int = Field(2_000, ge=1, description="Whole requests sampled for evaluation.")
    click_weight: float = Field(1.0, gt=0, description="Funnel weight of a click.")
    add_to_cart_weight: float = Field(3.0, gt=0, description="Funnel weight of an add to cart.")
    purchase_weight: float = Field(10.0, gt=0, description="Funnel weight of a purchase.")
    n_estimators: int = Field(120, ge=1, description="Boosting rounds of the item rankers.")
    num_leaves: int = Field(31, ge=2, description="Leaves per tree.")
    learning_rate: float = Field(0.08, gt=0, description="Boosting learning rate.")
    seed: int = Field(0, description="Seed for request sampling and boosting.")


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Address the HTTP service listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP service (0: any free port).")
    admin_token: str | None = Field(
        None, min_length=16, description="Token for the write endpoints (X-Admin-Token); unset disables them."
    )
    client_key: str | None = Field(None, description="Key POST /v1/events requires (X-Client-Key); unset: none.")
    max_batch_events: int = Field(1_000, ge=1, description="Events one POST /v1/events may carry (413 beyond).")
    max_body_bytes: int = Field(2_000_000, ge=1_024, description="Largest request body accepted (413 beyond).")
    latency_budget_ms: float = Field(
        250.0, gt=0, description="A page not built within this time is replaced by the fallback page."
    )
    redis_url: str | None = Field(None, description="redis://host:port/db shared by replicas; unset: in process.")
    replica_id: str = Field(
        "main", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Names this replica's intake log (data_dir/intake/<replica_id>) and its Redis entries.",
    )
    intake_segment_bytes: int = Field(64_000_000, ge=4_096, description="Intake log segment size before rolling.")
    workers: int = Field(4, ge=1, le=64, description="Threads building pages off the event loop.")
    cache_entries: int = Field(256, ge=0, description="Segment-cache entries (new-visitor page parts); 0: off.")


class PageConfig(_Section):
    """The default page pipeline (page/pipeline.py); the named variants are derived from it."""

    diversity: Literal["mmr", "dpp", "none"] = Field(
        "none", description="Diversity inside rows: MMR, DPP or none (measured best on ground truth: none).")
    diversity_strength: float = Field(0.7, ge=0, le=1,
                                      description="MMR lambda / DPP theta: 1 = pure relevance, 0 = pure variety.")
    ordering: Literal["top_k_mean", "marginal_gain"] = Field(
        "top_k_mean", description="Row order: mean of the top-K item scores, or greedy marginal gain.")
    top_k: int = Field(5, ge=1, description="K of the top-K-mean ordering.")
    ranker: str = Field("default", description="Item ranker: default (position_feature), factorized, ... .")
    item_pool: int = Field(20, ge=1, description="Candidate items per collection the ranker scores.")
    remove_no_image: bool = Field(False, description="Remove items without an image (default: demote them).")
    dedupe_items: bool = Field(True, description="An item appears at most once per page.")
    min_items: int = Field(4, ge=1, description="Collections left with fewer items are dropped.")
    explore_items: float = Field(0.05, ge=0, le=1, description="Probability per row of one new-item slot.")
    explore_collections: float = Field(0.05, ge=0, le=1, description="Probability per page of a new collection.")
    new_item_days: float = Field(14.0, gt=0, description="Items (and collections) this young count as new.")
    tree_backend: Literal["compiled", "lightgbm"] = Field(
        "compiled", description="How the request path scores tree models: compiled to native code with lleaves "
        "(same scores, ~5x faster; LightGBM is the fallback when compiling fails) or LightGBM's predictor.")
    compiled_cache_dir: Path | None = Field(
        None, description="Cache of compiled models (default: ~/.cache/shelfrank/compiled-trees).")


def _config_file() -> Path:
    override = _config_file_override.get()
    if override is not None:
        return override
    return Path(os.environ.get("SHELFRANK_CONFIG", "shelfrank.toml"))


class Settings(BaseSettings):
    """Everything configurable in shelfrank, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="SHELFRANK_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    store: StoreConfig = StoreConfig()
    simulate: SimulateConfig = SimulateConfig()
    train: TrainConfig = TrainConfig()
    serve: ServeConfig = ServeConfig()
    page: PageConfig = PageConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the settings; `config_file` replaces $SHELFRANK_CONFIG / ./shelfrank.toml for this call."""
    token = _config_file_override.set(config_file)
    try:
        return Settings(**overrides)
    finally:
        _config_file_override.reset(token)
