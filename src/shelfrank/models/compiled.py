"""Tree ensembles compiled to machine code for the request path (lleaves, on LLVM).

LightGBM's own predictor walks its trees through generic node arrays; on a page's ~1,300 rows
of a 120-tree ranker that is ~7 ms on one core. lleaves compiles the same model file into
native code for this CPU (through llvmlite, no system compiler), with identical outputs, in
~1.3 ms (docs/benchmarks.md). Compiling takes seconds, so the object code is cached on disk
under a key of the model text, the output kind, the library versions and the CPU; a service
restart or a second engine over the same models loads it in milliseconds.

:class:`TreePredictor` is what the scorers call. It falls back to LightGBM, with the reason
kept in ``fallback_reason``, when lleaves is missing or compilation fails, so a model always
scores.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import lightgbm as lgb
import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("compiled", "lightgbm")


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def default_cache_dir() -> Path:
    """Where compiled models are kept unless configured (page.compiled_cache_dir): the user's cache
    folder. The key is the model's content, so one cache serves every models folder on a machine."""
    root = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return root / "shelfrank" / "compiled-trees"


def _cpu_key() -> str:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    return f"{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features().flatten()}"


def _whole_object_file(path: Path) -> bool:
    """Whether an object file is complete: not empty and, for ELF (Linux), its section header
    table and every section with contents lie inside the file. LLVM aborts the whole process
    (not an exception) when handed a truncated one."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if len(data) < 64:
        return False
    if data[:4] != b"\x7fELF":
        return True  # another platform's format: only the size is checked
    if data[4] != 2 or data[5] != 1:  # 64-bit little-endian, what lleaves emits on x86-64 and arm64
        return True
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize = int.from_bytes(data[0x3A:0x3C], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    if shentsize < 0x28 or shoff + shnum * shentsize > len(data):
        return False
    for i in range(shnum):
        header = shoff + i * shentsize
        kind = int.from_bytes(data[header + 4: header + 8], "little")
        offset = int.from_bytes(data[header + 0x18: header + 0x20], "little")
        size = int.from_bytes(data[header + 0x20: header + 0x28], "little")
        if kind != 8 and offset + size > len(data):  # 8 = SHT_NOBITS (no contents in the file)
            return False
    return True


class TreePredictor:
    """`predict(X)` of one LightGBM booster on one thread, compiled when it can be.

    X is cast to float32 first, the precision the models were trained and always scored with,
    so both backends see the same values and give the same scores (tests/models/test_compiled.py).
    """

    def __init__(self, booster: lgb.Booster, *, raw_score: bool = False, backend: str = "compiled",
                 cache_dir: Path | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown tree backend {backend!r}; expected one of: {', '.join(BACKENDS)}")
        self.booster = booster
        self.raw_score = raw_score
        self.n_features = booster.num_feature()
        self.fallback_reason = ""
        self._compiled = None
        self.backend = "lightgbm"
        if backend == "compiled":
            try:
                self._compiled = self._compile(cache_dir)
                self.backend = "compiled"
            except Exception as exc:  # a model must score even where LLVM cannot compile it
                self.fallback_reason = f"{type(exc).__name__}: {exc}"
                log.warning("tree model not compiled, LightGBM scores it instead (%s)", self.fallback_reason)

    def _compile(self, cache_dir: Path | None):
        import lleaves

        text = self.booster.model_to_string()
        if not re.search(r"^objective=", text, flags=re.M):
            # A custom-objective model (the factorized ranker) saves no objective: its outputs are
            # the raw sums, which is what the identity transform of "regression" gives.
            text = re.sub(r"^(version=[^\n]*\n)", r"\1objective=regression\n", text, count=1, flags=re.M)
        key = hashlib.sha256("|".join((text, str(self.raw_score), _version("lleaves"), _version("llvmlite"),
                                       _cpu_key())).encode()).hexdigest()[:24]
        with tempfile.TemporaryDirectory(prefix="shelfrank-trees-") as tmp:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(text)
            model = lleaves.Model(model_file=str(model_file))
            cached = None
            if cache_dir is not None:
                try:
                    cache_dir.mkdir(parents=True, exist_ok=True)
                    cached = cache_dir / f"{key}.o"
                except OSError:
                    cached = None  # a read-only models folder: compile in memory every time
            if cached is not None and cached.is_file() and not _whole_object_file(cached):
                log.warning("compiled model cache %s is damaged; compiling again", cached)
                cached.unlink(missing_ok=True)
            if cached is not None and cached.is_file():
                model.compile(cache=str(cached), raw_score=self.raw_score)
            elif cached is not None:
                # Write under a private name, check it is whole, flush it to disk, then rename: a
                # concurrent loader never reads half a file, and a short write (a full disk) is
                # never kept (LLVM aborts the process on a truncated object file).
                partial = cached.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.partial.o")
                model.compile(cache=str(partial), raw_score=self.raw_score)
                try:
                    if _whole_object_file(partial):
                        with open(partial, "rb") as f:
                            os.fsync(f.fileno())
                        os.replace(partial, cached)
                    else:
                        log.warning("compiled model could not be cached whole in %s", cache_dir)
                finally:
                    partial.unlink(missing_ok=True)
            else:
                model.compile(raw_score=self.raw_score)
        return model

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {X.shape}")
        if len(X) == 0:
            return np.zeros(0)
        if self._compiled is not None:
            return self._compiled.predict(X.astype(np.float64), n_jobs=1)
        return self.booster.predict(X, num_threads=1, raw_score=self.raw_score)
