"""A watched inbox: files under `<dir>/<user>/…` are ingested for that user; deleted files leave
the index. Polling (a scan every few seconds) works the same on every filesystem, including
network mounts and containers where inotify events do not arrive."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InvalidName
from pipeline.names import validate_user_id
from pipeline.runner import LocalRunner, collect_files


class FolderWatcher:
    def __init__(self, root: Path, runner: LocalRunner) -> None:
        self.root = root
        self.runner = runner
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # (user, source) → (mtime, size)

    def scan(self) -> list[dict]:
        """Ingest what is new or changed since the last scan; delete what disappeared."""
        events: list[dict] = []
        present: dict[tuple[str, str], tuple[float, int]] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                user = validate_user_id(folder.name)
            except InvalidName as error:
                events.append({"event": "ignored", "user": folder.name, "source": "", "reason": str(error)})
                continue
            listed = _listed(folder, user, events)
            if listed is None:  # unreadable for now: what was there stays in the index
                present.update({key: seen for key, seen in self._seen.items() if key[0] == user})
                continue
            for path, source in listed:
                try:
                    stat = path.stat()
                except OSError:  # gone since the folder was listed: the next scan sees it deleted
                    continue
                key = (user, source)
                present[key] = (stat.st_mtime, stat.st_size)
                if self._seen.get(key) == present[key]:
                    continue
                record = self.runner.ingest_file(user, path, source)
                events.append({"event": "ingested", "user": user, "source": record.source,
                               "status": record.status, "reason": record.reason})
        for user, source in sorted(set(self._seen) - set(present)):
            removed = self.runner.delete(user, source)
            events.append({"event": "deleted", "user": user, "source": source, "chunks": removed or 0})
        self._seen = present
        return events


def _listed(folder: Path, user: str, events: list[dict]) -> list[tuple[Path, str]] | None:
    """The user's files; None, reported, when the folder vanished or cannot be read — the scan goes on."""
    try:
        return collect_files([folder])
    except OSError as error:
        events.append({"event": "ignored", "user": user, "source": "", "status": "failed",
                       "reason": f"cannot read the folder {folder.name}: {error.strerror or error}"})
        return None
