"""An oversize upload to `hanrag serve`: how much of it the server reads, writes and holds before it says no.

A real uvicorn server on a loopback port (the app `hanrag serve` runs, with a stand-in embedder: the
model plays no part in an upload that is refused) is offered a 300 MB file as a streamed multipart
body, against a size limit of 2 MB and of 50 MB. Printed per limit: the answer, the bytes sent before
it, the most the temporary and upload folders held at once, what is left on disk after, and the rise
of this process's peak resident memory during the upload (Linux's VmHWM, reset before each run).

    python bench/serve_upload.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import test_serve_security as served  # noqa: E402  (the test's own streaming client and folder measure)

from chat.guard import LoginThrottle  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.serve import local_app  # noqa: E402

OFFERED_MB = 300


class StandInEmbedder:
    dim, name = 4, "stand-in"

    def embed_passages(self, texts):
        return np.ones((len(texts), 4), dtype=np.float32)

    def embed_query(self, text):
        return np.ones(4, dtype=np.float32)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak resident set size


def main() -> None:
    import httpx

    work = Path(tempfile.mkdtemp(prefix="serve-upload-"))
    spool = work / "tmp"
    spool.mkdir()
    tempfile.tempdir = str(spool)  # where the form parser would spool file parts
    home = work / "home"
    served.accounts_in(home).add("kim", served.PASSWORD)
    print(f"{OFFERED_MB} MB offered as a chunked multipart upload, 1 MB pieces")
    for limit_mb in (2, 50):
        app = local_app(Settings(home=home, max_file_bytes=limit_mb * 2**20), embedder=StandInEmbedder(),
                        throttle=LoginThrottle(pause=0))
        sent: list[int] = []
        disk = [0]

        def offered(sent=sent, disk=disk):
            for piece in served.multipart_stream("big.bin", OFFERED_MB, b"\0" * 2**20, sent):
                disk[0] = max(disk[0], served.disk_use(spool, home / "uploads"))
                yield piece

        with served.running(app) as url, httpx.Client(base_url=url) as client:
            client.post("/api/login", json={"user": "kim", "password": served.PASSWORD})
            reset_peak_rss()
            before = peak_rss_mb()
            started = time.perf_counter()
            answer = served.send_until_answered(url, client.cookies[served.COOKIE], offered())
            seconds = time.perf_counter() - started
            rise = peak_rss_mb() - before
        left = served.disk_use(spool, home / "uploads")
        print(f"limit {limit_mb:>2} MB: {answer.split(chr(13))[0]} after {sum(sent) / 2**20:.0f} MB sent, "
              f"peak disk {disk[0] / 2**20:.1f} MB, peak memory +{rise:.1f} MB, {seconds:.2f} s, left on disk {left} B")


if __name__ == "__main__":
    main()
