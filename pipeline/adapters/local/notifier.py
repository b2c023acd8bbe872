"""Local notifiers: a webhook that receives each run record as JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pipeline.errors import TransientError
from pipeline.models import RunRecord


class WebhookNotifier:
    """POSTs the run record as JSON to a URL the user configured (HANRAG_WEBHOOK_URL)."""

    def __init__(self, url: str, timeout_seconds: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        self.url = url
        self.timeout_seconds = timeout_seconds

    def notify(self, record: RunRecord) -> None:
        body = json.dumps({**record.to_dict(), "durations": record.durations}, ensure_ascii=False)
        request = urllib.request.Request(
            self.url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise TransientError(f"webhook {self.url} failed: {error}") from error
