"""The one error type of the export stage."""

from __future__ import annotations


class ExportError(ValueError):
    """The release cannot be written; the message names what and says what to do.

    A ``ValueError``, so the ``lamostdb`` command reports it as an error (exit status 2).
    """
