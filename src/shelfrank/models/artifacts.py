"""Versioned model artefacts: a folder per trained model, with what it needs to be trusted.

Layout::

    <models_dir>/<kind>/<version>/
        metadata.json     kind, version, format, features and their types, training window,
                          data hash, metrics, hyperparameters, library versions
        ...               the model's own files, written by the model's save()
    <models_dir>/<kind>/LATEST   the version served by default

A version folder is written under a temporary name and renamed when complete, so a
reader never sees half an artefact. Loading checks the kind, the format version and the
feature list against what the caller will feed, and says precisely what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shelfrank import __version__
from shelfrank.errors import UserFacingError

ARTIFACT_FORMAT = 1
METADATA_FILE = "metadata.json"
LATEST_FILE = "LATEST"


class ArtifactError(UserFacingError):
    """A model artefact is missing, incomplete or incompatible with the caller."""


@dataclass(frozen=True)
class ArtifactMetadata:
    kind: str  # e.g. "item_ranker", "collection_retrieval", "examination_curve"
    version: str
    features: tuple[str, ...] = ()
    feature_types: Mapping[str, str] = field(default_factory=dict)
    training_window: tuple[str, str] | None = None  # ISO timestamps [start, end)
    data_hash: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, object] = field(default_factory=dict)
    created_at: str = ""
    shelfrank_version: str = __version__
    format: int = ARTIFACT_FORMAT
    libraries: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ArtifactMetadata:
        raw = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ArtifactError(
                f"artefact metadata has unknown fields {sorted(unknown)}; written by a newer shelfrank?"
            )
        raw["features"] = tuple(raw.get("features", ()))
        if raw.get("training_window") is not None:
            raw["training_window"] = tuple(raw["training_window"])
        return cls(**raw)


def new_version(now: datetime | None = None, salt: str = "") -> str:
    """Sortable, unique enough: UTC time to the second plus a short hash."""
    now = now or datetime.now(UTC)
    digest = hashlib.sha1(f"{now.isoformat()}{salt}{os.getpid()}".encode()).hexdigest()[:6]
    return f"{now:%Y%m%dT%H%M%S}-{digest}"


def hash_arrays(*chunks: bytes | memoryview) -> str:
    """Content hash of training data, to tell whether two models saw the same data."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:16]


def save_artifact(
    models_dir: Path,
    metadata: ArtifactMetadata,
    write_files: Callable[[Path], None],
    make_latest: bool = True,
) -> Path:
    """Write a complete artefact folder atomically and return its path."""
    kind_dir = Path(models_dir) / metadata.kind
    kind_dir.mkdir(parents=True, exist_ok=True)
    final = kind_dir / metadata.version
    if final.exists():
        raise ArtifactError(f"artefact {metadata.kind}/{metadata.version} already exists")
    staging = Path(tempfile.mkdtemp(prefix=f".{metadata.version}-", dir=kind_dir))
    try:
        write_files(staging)
        stamped = metadata if metadata.created_at else _with(metadata, created_at=datetime.now(UTC).isoformat())
        (staging / METADATA_FILE).write_text(stamped.to_json())
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if make_latest:
        set_latest(models_dir, metadata.kind, metadata.version)
    return final


def set_latest(models_dir: Path, kind: str, version: str) -> None:
    kind_dir = Path(models_dir) / kind
    if not (kind_dir / version / METADATA_FILE).is_file():
        raise ArtifactError(f"no complete artefact {kind}/{version} in {models_dir}")
    tmp = kind_dir / f".{LATEST_FILE}.tmp"
    tmp.write_text(version + "\n")
    tmp.replace(kind_dir / LATEST_FILE)


def list_versions(models_dir: Path, kind: str) -> list[ArtifactMetadata]:
    """Complete artefacts of a kind, oldest first."""
    kind_dir = Path(models_dir) / kind
    if not kind_dir.is_dir():
        return []
    found = []
    for path in sorted(p for p in kind_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (path / METADATA_FILE).is_file():
            found.append(read_metadata(path))
    return found


def resolve(models_dir: Path, kind: str, version: str | None = None) -> Path:
    """The folder of `version`, or of the LATEST one when version is None."""
    kind_dir = Path(models_dir) / kind
    if version is None:
        latest = kind_dir / LATEST_FILE
        if not latest.is_file():
            raise ArtifactError(f"no trained {kind} in {models_dir}; run `shelfrank train` first")
        version = latest.read_text().strip()
    if "/" in version or version.startswith("."):
        raise ArtifactError(f"invalid model version {version!r}")
    path = kind_dir / version
    if not (path / METADATA_FILE).is_file():
        raise ArtifactError(f"{kind} version {version} not found in {models_dir}")
    return path


def read_metadata(path: Path) -> ArtifactMetadata:
    meta_path = Path(path) / METADATA_FILE
    try:
        return ArtifactMetadata.from_json(meta_path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is not a model artefact (no {METADATA_FILE})") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise ArtifactError(f"{meta_path} is unreadable: {exc}") from None


def check_compatible(metadata: ArtifactMetadata, kind: str, features: Iterable[str] | None = None) -> None:
    """Refuse an artefact that the caller cannot feed correctly, saying what differs."""
    if metadata.kind != kind:
        raise ArtifactError(f"expected a {kind} artefact, got {metadata.kind} ({metadata.version})")
    if metadata.format > ARTIFACT_FORMAT:
        raise ArtifactError(
            f"{kind} {metadata.version} has format {metadata.format}; this shelfrank reads up to "
            f"{ARTIFACT_FORMAT} (upgrade shelfrank)"
        )
    if features is not None:
        expected = tuple(features)
        if expected != metadata.features:
            missing = [f for f in metadata.features if f not in expected]
            extra = [f for f in expected if f not in metadata.features]
            detail = []
            if missing:
                detail.append(f"model needs {missing[:5]} which the caller lacks")
            if extra:
                detail.append(f"caller has {extra[:5]} which the model never saw")
            if not detail:
                detail.append("same features in a different order")
            raise ArtifactError(f"{kind} {metadata.version} is incompatible: " + "; ".join(detail))


def _with(metadata: ArtifactMetadata, **changes: object) -> ArtifactMetadata:
    values = asdict(metadata)
    values.update(changes)
    values["features"] = tuple(values["features"])
    return ArtifactMetadata(**values)
