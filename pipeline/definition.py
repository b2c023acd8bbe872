"""The ingestion pipeline as data: stage order and retry policy.

Both runners read this module: the local runner (`pipeline.runner`) calls the stages in this order
with these retries, and the AWS state machine is built from the same list, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Retry with exponential backoff, the same fields a Step Functions `Retry` takes."""

    max_attempts: int = 1  # total attempts, including the first
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_delay_seconds: float = 30.0

    def delays(self) -> list[float]:
        """Seconds to wait before each retry (one entry per retry)."""
        return [
            min(self.interval_seconds * self.backoff_rate**i, self.max_delay_seconds)
            for i in range(self.max_attempts - 1)
        ]


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: int = 900


NO_RETRY = RetryPolicy(max_attempts=1)
# Stages that call a model, an endpoint or a webhook can hit throttling or a cold start.
REMOTE_RETRY = RetryPolicy(max_attempts=4, interval_seconds=2.0, backoff_rate=2.0)

STAGES: tuple[Stage, ...] = (
    Stage("extract", "file → ordered text blocks and tables per page", NO_RETRY, timeout_seconds=900),
    Stage("chunk", "text → token-sized chunks on Korean sentence boundaries", NO_RETRY, 300),
    Stage("embed", "chunks → vectors (passage prefix)", REMOTE_RETRY, 900),
    Stage("index", "replace the document's chunks in the user's index", REMOTE_RETRY, 300),
    Stage("summarize", "a short summary in the document's language", REMOTE_RETRY, 300),
    Stage("notify", "store and announce the run record", REMOTE_RETRY, 60),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(name)
