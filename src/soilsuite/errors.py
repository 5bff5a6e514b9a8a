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
