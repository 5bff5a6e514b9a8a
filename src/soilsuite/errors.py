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


def check_choice(value, choices, what: str, error: type[SoilsuiteError] = ConfigError):
    """``value`` if it is one of ``choices``, else ``error`` (a :class:`ConfigError` by default)
    saying ``"<what> must be one of a, b, c, got 'x'"``."""
    if value not in choices:
        raise error(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def choice_or_env(value: str | None, env: str, default: str, choices, what: str) -> str:
    """``value`` if given, else ``$env``, else ``default``; checked against ``choices``.

    The error names where a bad value came from: ``what`` or ``$env``
    (``"$SOILSUITE_X: expected one of a, b, got 'x'"``).
    """
    import os

    src = what
    if value is None:
        value, src = os.environ.get(env) or default, f"${env}"
    if value not in choices:
        raise ConfigError(f"{src}: expected one of {', '.join(choices)}, got {value!r}")
    return value
