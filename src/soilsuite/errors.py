"""Error hierarchy. Messages say what was expected, what was found, and where."""

from __future__ import annotations


class SoilsuiteError(Exception):
    """Base class of every error soilsuite raises on purpose (CLI exit code 2)."""


class InputError(SoilsuiteError):
    """Bad input data: a file, STAC item, asset or band that is missing or malformed."""


class ConfigError(SoilsuiteError):
    """An option or parameter value that is out of range or inconsistent."""


class OutputExistsError(SoilsuiteError):
    """An output exists already and ``overwrite`` was not given."""


def exception_chain(exc: BaseException | None):
    """``exc`` and the exceptions it was raised from (``__cause__`` or ``__context__``),
    outermost first; a chain that loops back is followed once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
