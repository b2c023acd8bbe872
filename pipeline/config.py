"""Settings, read once from the environment and handed to whatever needs them.

Nothing below `pipeline/stages` reads the environment; the CLI and the Lambda handlers build a
`Settings` and pass its parts on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.definition import Env
from pipeline.options import ChunkOptions, ExtractOptions, SearchOptions


@dataclass(frozen=True)
class LLMSettings:
    """Which LLM writes chat answers (HANRAG_LLM): none (extractive), openai, bedrock or sagemaker."""

    kind: str = "none"
    url: str | None = None  # openai: the server's base URL, e.g. http://127.0.0.1:11434/v1
    model: str | None = None  # openai: the model name; bedrock: the model id
    api_key: str | None = None  # openai
    endpoint: str | None = None  # sagemaker: the endpoint name
    timeout: float = 120.0


LLM_KINDS = ("none", "openai", "bedrock", "sagemaker")


@dataclass(frozen=True)
class IndexSettings:
    """Where the search index lives (HANRAG_INDEX): one SQLite file, or an OpenSearch cluster."""

    kind: str = "sqlite"
    url: str = "http://127.0.0.1:9200"  # HANRAG_OPENSEARCH_URL (an Amazon OpenSearch domain: https://…)
    auth: str = "none"  # none, basic (user and password) or sigv4 (AWS credentials, region, service)
    username: str | None = None
    password: str | None = None
    region: str | None = None
    service: str = "es"  # sigv4: `es` for a managed domain, `aoss` for OpenSearch Serverless
    timeout: float = 30.0
    replicas: int = 1


INDEX_KINDS = ("sqlite", "opensearch")
OPENSEARCH_AUTH = ("none", "basic", "sigv4")


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".hanrag")
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    chunk: ChunkOptions = field(default_factory=ChunkOptions)
    search: SearchOptions = field(default_factory=SearchOptions)
    embed_batch_size: int = 16  # texts per call to the embedder
    embed_batch_chunks: int = 64  # chunks per item of the embed fan-out (one Lambda call on AWS)
    vector_cache_rows: int = 100_000  # passage vectors kept for reuse (HANRAG_VECTOR_CACHE_ROWS; 0: no cache)
    ocr_cache_rows: int = 20_000  # OCR readings of pictures and scans kept (HANRAG_OCR_CACHE_ROWS; 0: none)
    summary_sentences: int = 5
    max_file_bytes: int = 200 * 1024 * 1024
    max_upload_bytes: int = 1024 * 1024 * 1024  # one upload request of hanrag serve, all its files together
    allowed_hosts: tuple[str, ...] = ()  # hanrag serve answers to loopback names and these (HANRAG_ALLOWED_HOSTS)
    session_hours: float = 168.0  # a login lasts this long (HANRAG_SESSION_HOURS)
    max_seconds_per_file: float = 1800.0
    webhook_url: str | None = None
    # PDF passwords by "user/source" (one file), "user" (all of a user's files) or "*" (everyone)
    pdf_passwords: dict[str, str] = field(default_factory=dict)
    llm: LLMSettings = field(default_factory=LLMSettings)
    index: IndexSettings = field(default_factory=IndexSettings)

    def pdf_password_for(self, user_id: str, source: str) -> str | None:
        """The most specific password configured for this user's file, else HANRAG_PDF_PASSWORD."""
        for key in (f"{user_id}/{source}", user_id, "*"):
            if key in self.pdf_passwords:
                return self.pdf_passwords[key]
        return self.extract.pdf_password

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
                # OCR of the pictures on pages that have text (charts, labelled photos): seconds a picture
                ocr_images=env.get("HANRAG_OCR_IMAGES", "1").lower() not in ("0", "false", "no", "off"),
                pdf_aligned_tables=env.get("HANRAG_PDF_ALIGNED_TABLES", "1").lower() not in ("0", "false", "no", "off"),
            ),
            chunk=ChunkOptions(
                chunk_tokens=int(number("HANRAG_CHUNK_TOKENS", 512)),
                overlap_tokens=int(number("HANRAG_CHUNK_OVERLAP", 64)),
            ),
            search=SearchOptions(
                fusion=env.get("HANRAG_FUSION", "minmax"),  # type: ignore[arg-type]
                dense_weight=number("HANRAG_DENSE_WEIGHT", SearchOptions.dense_weight),
                rerank=env.get("HANRAG_RERANK", "1").lower() not in ("0", "false", "no", "off"),
            ),
            embed_batch_size=int(number("HANRAG_EMBED_BATCH", 16)),
            embed_batch_chunks=int(number(Env.EMBED_BATCH_CHUNKS, 64)),
            vector_cache_rows=int(number("HANRAG_VECTOR_CACHE_ROWS", 100_000)),
            ocr_cache_rows=int(number("HANRAG_OCR_CACHE_ROWS", 20_000)),
            max_file_bytes=int(number("HANRAG_MAX_FILE_MB", 200) * 1024 * 1024),
            max_upload_bytes=int(number("HANRAG_MAX_UPLOAD_MB", 1024) * 1024 * 1024),
            allowed_hosts=tuple(h.strip().lower() for h in env.get("HANRAG_ALLOWED_HOSTS", "").split(",")
                                if h.strip()),
            session_hours=number("HANRAG_SESSION_HOURS", 168),
            max_seconds_per_file=number("HANRAG_MAX_SECONDS", 1800),
            webhook_url=env.get("HANRAG_WEBHOOK_URL") or None,
            pdf_passwords=_passwords(env.get("HANRAG_PDF_PASSWORDS")),
            llm=_llm_settings(env, number),
            index=_index_settings(env, number),
        )


def _index_settings(env: Mapping[str, str], number: Callable[[str, float], float]) -> IndexSettings:
    kind = (env.get(Env.INDEX) or "sqlite").lower()
    if kind not in INDEX_KINDS:
        raise ValueError(f"HANRAG_INDEX must be one of {', '.join(INDEX_KINDS)}, not {kind!r}")
    auth = (env.get("HANRAG_OPENSEARCH_AUTH") or "none").lower()
    if auth not in OPENSEARCH_AUTH:
        raise ValueError(f"HANRAG_OPENSEARCH_AUTH must be one of {', '.join(OPENSEARCH_AUTH)}, not {auth!r}")
    return IndexSettings(
        kind=kind,
        url=env.get("HANRAG_OPENSEARCH_URL") or IndexSettings.url,
        auth=auth,
        username=env.get("HANRAG_OPENSEARCH_USER") or None,
        password=env.get("HANRAG_OPENSEARCH_PASSWORD"),
        region=env.get("HANRAG_OPENSEARCH_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        service=env.get("HANRAG_OPENSEARCH_SERVICE") or "es",
        timeout=number("HANRAG_OPENSEARCH_TIMEOUT", IndexSettings.timeout),
        replicas=int(number("HANRAG_OPENSEARCH_REPLICAS", IndexSettings.replicas)),
    )


def _llm_settings(env: Mapping[str, str], number: Callable[[str, float], float]) -> LLMSettings:
    kind = (env.get(Env.LLM) or "none").lower()
    if kind not in LLM_KINDS:
        raise ValueError(f"HANRAG_LLM must be one of {', '.join(LLM_KINDS)}, not {kind!r}")
    return LLMSettings(
        kind=kind,
        url=env.get("HANRAG_LLM_URL") or None,
        model=env.get(Env.LLM_MODEL) or None,
        api_key=env.get("HANRAG_LLM_API_KEY") or None,
        endpoint=env.get(Env.LLM_ENDPOINT) or None,
        timeout=number("HANRAG_LLM_TIMEOUT", 120),
    )


def _passwords(path: str | None) -> dict[str, str]:
    """HANRAG_PDF_PASSWORDS names a JSON file: {"user/file.pdf": "…", "user": "…", "*": "…"}."""
    if not path:
        return {}
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"HANRAG_PDF_PASSWORDS: cannot read {path}: {error}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
        raise ValueError(f'HANRAG_PDF_PASSWORDS: {path} must hold a JSON object of strings, like {{"user": "secret"}}')
    return loaded
