"""Notify: announce a finished run to every configured notifier."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.models import RunRecord
from pipeline.ports import Notifier


def notify(record: RunRecord, notifiers: Sequence[Notifier]) -> None:
    for notifier in notifiers:
        notifier.notify(record)
