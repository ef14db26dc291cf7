"""Errors an operator reads.

Every failure that reaches a user is a :class:`SafecityError` whose message is one
plain sentence saying what was wrong and, where possible, what to do. The CLI
prints that sentence and exits non-zero; it never shows a traceback.
"""


class SafecityError(Exception):
    """A failure explained in words an operator understands."""


class ConfigError(SafecityError):
    """The configuration file or a command option is invalid."""


class SourceError(SafecityError):
    """A video source could not be opened or read (missing, corrupt, unreachable)."""


class ModelError(SafecityError):
    """A model is missing, corrupt, or could not be fetched or converted."""


class EnrolmentError(SafecityError):
    """A photo cannot be enrolled (not an image, no face, several faces, too small)."""


class AuthorisationError(SafecityError):
    """A watchlist operation lacks a valid legal authorisation."""
