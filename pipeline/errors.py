"""Errors that carry a reason a person can read.

A stage raises one of these when the *input* is the problem; the runner turns it into a failed
`RunRecord` with `reason` set to the message, never a traceback on the console.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class; `str(error)` is the reason shown to the user."""

    retryable = False


class UnsupportedFormat(PipelineError):
    """The file's content is not a type we can extract."""


class EmptyDocument(PipelineError):
    """The file holds no text to index."""


class EncryptedDocument(PipelineError):
    """The file needs a password we do not have."""


class BrokenDocument(PipelineError):
    """The file is damaged beyond what the parsers can recover."""


class InvalidName(PipelineError):
    """A user id or source path that could escape its place or confuse an index."""


class LimitExceeded(PipelineError):
    """A configured limit (file size, pages, decompressed size, processing time) was hit."""


class TimeLimitExceeded(LimitExceeded):
    """The file took longer than HANRAG_MAX_SECONDS."""


class DimensionMismatch(PipelineError):
    """The embedding model answers vectors of another size than the configured dimension (the index's
    mapping): a configuration error, so retrying cannot help."""


class TransientError(PipelineError):
    """A dependency (model, endpoint, webhook) failed in a way worth retrying."""

    retryable = True


class Superseded(PipelineError):
    """A newer upload or a delete of the same file came after the event this run started from (S3's
    `sequencer` orders them): the run stops without touching what the newer event left. Not a failure."""
