"""Progress reporting that library code can use without knowing about the terminal.

Long library functions take a ``progress: Progress`` argument and call
``with progress.task("what", total=n) as advance: advance(k)``. The CLI passes a
rich-backed one; tests and library users get the silent default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Progress(Protocol):
    def task(
        self, description: str, total: float | None = None
    ) -> AbstractContextManager[Callable[[float], None]]: ...


class SilentProgress:
    """Reports nothing."""

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        yield lambda n=1: None


class RichProgress:
    """Shows each task as a rich progress bar; use as a context manager."""

    def __init__(self, console=None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as _RichProgress

        self._bar = _RichProgress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        task_id = self._bar.add_task(description, total=total)

        def advance(n: float = 1) -> None:
            self._bar.advance(task_id, n)

        try:
            yield advance
        finally:
            if total is not None:
                self._bar.update(task_id, completed=total)
            else:
                self._bar.update(task_id, total=1, completed=1)


SILENT = SilentProgress()
