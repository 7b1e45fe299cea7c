"""The two ways handling a record can fail, and what the record pipeline does with each.

``TransientError``: the world is not ready (a broker hiccup, a dependency down, a consent
change that must not be skipped). The partition stops at that record and the rest of its
batch is retried with backoff until it succeeds; it is never skipped.

``PermanentError``: this record can never be handled (it names what does not exist, it
breaks a rule). It goes to ``dead-letters`` and its partition goes on.

Undecodable records (``services.common.codec.DecodeError``) are permanent as well.
"""

from __future__ import annotations


class TransientError(Exception):
    """Retry the record (and its partition) later; never skip it."""


class PermanentError(Exception):
    """Dead-letter the record and go on; ``reason`` says why, for the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
