"""Settings, read once from the environment and handed to whatever needs them.

Nothing below `pipeline/stages` reads the environment; the CLI and the Lambda handlers build a
`Settings` and pass its parts on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.stages.chunk import ChunkOptions
from pipeline.stages.extract import ExtractOptions
from pipeline.stages.index import SearchOptions


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".hanrag")
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    chunk: ChunkOptions = field(default_factory=ChunkOptions)
    search: SearchOptions = field(default_factory=SearchOptions)
    embed_batch_size: int = 16
    summary_sentences: int = 5
    max_file_bytes: int = 200 * 1024 * 1024
    max_seconds_per_file: float = 1800.0
    webhook_url: str | None = None

    @property
    def database_path(self) -> Path:
        return self.home / "hanrag.db"

    @property
    def artifacts_path(self) -> Path:
        return self.home / "artifacts"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def number(name: str, default: float) -> float:
            value = env.get(name)
            try:
                return float(value) if value not in (None, "") else default
            except ValueError:
                raise ValueError(f"{name} must be a number, not {value!r}") from None

        return cls(
            home=Path(env.get("HANRAG_HOME") or ".hanrag"),
            extract=ExtractOptions(
                pdf_tables=env.get("HANRAG_PDF_TABLES", "1") not in ("0", "false", "no"),
                pdf_password=env.get("HANRAG_PDF_PASSWORD") or None,
                max_pages=int(number("HANRAG_MAX_PAGES", 5000)),
                max_unzipped_bytes=int(number("HANRAG_MAX_UNZIPPED_MB", 200) * 1024 * 1024),
                ocr=env.get("HANRAG_OCR", "1").lower() not in ("0", "false", "no", "off"),
            ),
            chunk=ChunkOptions(
                chunk_tokens=int(number("HANRAG_CHUNK_TOKENS", 512)),
                overlap_tokens=int(number("HANRAG_CHUNK_OVERLAP", 64)),
            ),
            search=SearchOptions(
                fusion=env.get("HANRAG_FUSION", "minmax"),  # type: ignore[arg-type]
                dense_weight=number("HANRAG_DENSE_WEIGHT", 0.5),
            ),
            embed_batch_size=int(number("HANRAG_EMBED_BATCH", 16)),
            max_file_bytes=int(number("HANRAG_MAX_FILE_MB", 200) * 1024 * 1024),
            max_seconds_per_file=number("HANRAG_MAX_SECONDS", 1800),
            webhook_url=env.get("HANRAG_WEBHOOK_URL") or None,
        )
