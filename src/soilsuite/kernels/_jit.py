"""Compile one kernel body twice: serial (the default) and ``parallel=True`` (``prange`` over rows).

Numba's on-disk cache keys a function by its qualified name and signature, not by its
compile options, so the parallel twin gets its own qualified name (``<name>_parallel``);
otherwise both dispatchers would share one cache entry.
"""

from __future__ import annotations

import types

from numba import njit


def twins(fn):
    """Return ``(serial, parallel)`` numba dispatchers of the Python function ``fn``.

    Both are ``cache=True, nogil=True``; ``prange`` in ``fn`` runs as ``range`` in the serial
    twin. Serial is the default of the public wrappers: the pipeline runs one single-threaded
    process per core, and the parallel twin is for interactive use on one machine.
    """
    par = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel",
                             fn.__defaults__, fn.__closure__)
    par.__qualname__ = fn.__qualname__ + "_parallel"
    par.__module__ = fn.__module__
    return (njit(cache=True, nogil=True)(fn),
            njit(cache=True, nogil=True, parallel=True)(par))
