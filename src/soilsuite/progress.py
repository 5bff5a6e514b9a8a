"""One progress bar for every long step (tiles, preflight reads, simulation, FORCE export, prediction).

A leaf module (imports only rich), so the pipeline, sources, io and dsm can all use it and the
bars look alike: label, bar, done/total, elapsed time, and optionally a stage and the ETA.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import threading
import time
from typing import Any

__all__ = ["emit", "output_mode", "progress_bar", "set_output"]

#: How progress reaches the user: ``"rich"`` (bars on the terminal), ``"json"`` (one JSON object
#: per line on stderr, for batch systems) or ``"quiet"`` (nothing). Set by the CLI's
#: ``--log-json`` / ``--quiet`` (:func:`set_output`); the Python API keeps ``"rich"``.
_MODE = {"mode": "rich"}
_LOCK = threading.Lock()


def set_output(mode: str) -> None:
    """Route every progress display of this process: ``"rich"``, ``"json"`` or ``"quiet"``."""
    if mode not in ("rich", "json", "quiet"):
        raise ValueError(f"progress output must be 'rich', 'json' or 'quiet', got {mode!r}")
    _MODE["mode"] = mode


def output_mode() -> str:
    """The current progress output (:func:`set_output`)."""
    return _MODE["mode"]


def emit(event: str, **fields: Any) -> None:
    """Write one JSON record ``{"time", "event", ...fields}`` on stderr in ``"json"`` mode (else nothing).

    Records of a run: ``start``, ``progress`` (``task``, ``stage``, ``tile``, ``done``,
    ``total``, ``progress`` 0-1), ``message``, ``error`` (``message``) and, last, ``done``.
    """
    if _MODE["mode"] != "json":
        return
    rec = {"time": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"), "event": event}
    rec.update({k: v for k, v in fields.items() if v is not None})
    line = json.dumps(rec, default=str)
    with _LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


class _JsonConsole:
    """Stands in for ``Progress.console``: a printed line becomes a ``message`` record."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from rich.text import Text

        emit("message", message=" ".join(Text.from_markup(str(o)).plain for o in objects))


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


class _JsonBar(_NoBar):
    """Stands in for a :class:`rich.progress.Progress` in ``"json"`` mode: each task's changes
    become ``progress`` records (at most one per task and second, plus every change of stage
    and the end of each task)."""

    def __init__(self) -> None:
        self.console = _JsonConsole()
        self.tasks: dict[int, dict[str, Any]] = {}
        self._next = 0

    def _emit(self, t: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - t["sent"] < 1.0:
            return
        t["sent"] = now
        total = t["total"]
        frac = None if not total else round(min(1.0, t["completed"] / total), 4)
        fields = {k: v for k, v in t["fields"].items() if isinstance(v, str | int | float) and v != ""}
        emit("progress", task=t["description"].strip(), done=t["completed"], total=total, progress=frac, **fields)

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0, **fields: Any) -> int:
        with _LOCK:
            tid = self._next
            self._next += 1
        self.tasks[tid] = {"description": description, "total": total, "completed": completed, "fields": fields,
                           "sent": 0.0}
        self._emit(self.tasks[tid], force=True)
        return tid

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None,
               total: float | None = None, description: str | None = None, **fields: Any) -> None:
        t = self.tasks.get(task_id)
        if t is None:
            return
        # a new stage (its first word: "load", "composite", ...) is always reported
        stage_changed = any(str(t["fields"].get(k, "")).split(" ")[:1] != str(v).split(" ")[:1]
                            for k, v in fields.items())
        if completed is not None:
            t["completed"] = completed
        if advance is not None:
            t["completed"] += advance
        if total is not None:
            t["total"] = total
        if description is not None:
            t["description"] = description
        t["fields"].update(fields)
        self._emit(t, force=stage_changed or (bool(t["total"]) and t["completed"] >= t["total"]))

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def remove_task(self, task_id: int) -> None:
        self.tasks.pop(task_id, None)


def progress_bar(enabled: bool = True, *, stage: bool = False, eta: bool = True, transient: bool = False):
    """A rich progress bar with soilsuite's columns, or a do-nothing stand-in.

    Parameters
    ----------
    enabled : bool
        False (or :func:`set_output` ``"quiet"``) gives an object with the same methods (``add_task``, ``advance``, ``update``,
        ``remove_task``, ``start``/``stop``, context manager) that draws nothing.
    stage : bool
        Add a column with the task field ``stage`` (give ``stage=...`` to ``add_task``), and
        show the share done in percent (tasks may advance by fractions, e.g. within a tile).
    eta : bool
        Add the estimated time remaining.
    transient : bool
        Remove the bar from the terminal when it stops.

    Returns
    -------
    rich.progress.Progress or a stand-in
        Use as a context manager (or ``start()``/``stop()``); tasks show their description.
        In :func:`set_output` ``"json"`` mode, a stand-in that writes ``progress`` records.
    """
    if not enabled or _MODE["mode"] == "quiet":
        return _NoBar()
    if _MODE["mode"] == "json":
        return _JsonBar()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(),
               TaskProgressColumn() if stage else MofNCompleteColumn(), TimeElapsedColumn()]
    if stage:
        columns.append(TextColumn("{task.fields[stage]}"))
    if eta:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, transient=transient)
