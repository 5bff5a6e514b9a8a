"""One progress bar for every long step (tiles, preflight reads, simulation, FORCE export, prediction).

A leaf module (imports only rich), so the pipeline, sources, io and dsm can all use it and the
bars look alike: label, bar, done/total, elapsed time, and optionally a stage and the ETA.
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


class _NoBar:
    """Stands in for a :class:`rich.progress.Progress` when progress is off: every call does nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def add_task(self, *args: Any, **kwargs: Any) -> None:
        return None

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def remove_task(self, *args: Any, **kwargs: Any) -> None:
        pass


def progress_bar(enabled: bool = True, *, stage: bool = False, eta: bool = True, transient: bool = False):
    """A rich progress bar with soilsuite's columns, or a do-nothing stand-in.

    Parameters
    ----------
    enabled : bool
        False gives an object with the same methods (``add_task``, ``advance``, ``update``,
        ``remove_task``, ``start``/``stop``, context manager) that draws nothing.
    stage : bool
        Add a column with the task field ``stage`` (give ``stage=...`` to ``add_task``).
    eta : bool
        Add the estimated time remaining.
    transient : bool
        Remove the bar from the terminal when it stops.

    Returns
    -------
    rich.progress.Progress or a stand-in
        Use as a context manager (or ``start()``/``stop()``); tasks show their description.
    """
    if not enabled:
        return _NoBar()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if stage:
        columns.append(TextColumn("{task.fields[stage]}"))
    if eta:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, transient=transient)
