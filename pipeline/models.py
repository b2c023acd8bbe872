"""The contracts every stage, adapter and runner agrees on.

Plain dataclasses (beside `pipeline.definition`, the pipeline as data): they cross process boundaries
(Lambda payloads, JSON run records, SQLite rows), so each one turns into a dict with
`dataclasses.asdict` and back with `from_dict`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pipeline.definition import MAX_WARNINGS

# "image": the text OCR read inside a picture on a page that has a text layer (a chart's labels).
ElementKind = Literal["text", "table", "image"]
RunStatus = Literal["running", "succeeded", "skipped", "failed"]
# A document's run as the registry shows it while work is under way and after: waiting for a worker,
# in a stage, done, failed (the previous version stays current), or deleted.
DocumentStatus = Literal["queued", "processing", "succeeded", "failed", "deleted"]


@dataclass(frozen=True)
class DocumentRef:
    """Which document of which user, at which content version."""

    user_id: str
    source: str  # the file name as the user gave it (relative to what they ingested)
    version: str  # content hash (sha256 hex); a changed file is a new version

    @property
    def document_id(self) -> str:
        """Stable across versions: one user's one source is one document."""
        digest = hashlib.sha256(f"{self.user_id}\x00{self.source}".encode()).hexdigest()
        return digest[:20]


@dataclass
class Table:
    """A table as rows of cells; the first `header_rows` rows are its header."""

    rows: list[list[str]]
    header_rows: int = 1

    @property
    def header(self) -> list[list[str]]:
        return self.rows[: self.header_rows]

    @property
    def body(self) -> list[list[str]]:
        return self.rows[self.header_rows :]

    def to_markdown(self, rows: list[list[str]] | None = None) -> str:
        """Markdown rendering of the header plus `rows` (all body rows by default)."""
        body = self.body if rows is None else rows
        width = max((len(r) for r in self.rows), default=0)

        def line(cells: list[str]) -> str:
            cells = [c.replace("|", "\\|").replace("\n", " ").strip() for c in cells]
            cells += [""] * (width - len(cells))
            return "| " + " | ".join(cells) + " |"

        header = self.header or [[""] * width]
        lines = [line(r) for r in header]
        lines.insert(len(header), "|" + "---|" * width)
        lines += [line(r) for r in body]
        return "\n".join(lines)


@dataclass
class Element:
    """One ordered piece of a document: a text block, a table or an image's text, on a page (1-based)."""

    kind: ElementKind
    page: int
    text: str = ""  # for tables: the Markdown rendering
    table: Table | None = None
    heading: bool = False  # a title or section heading (it becomes the heading of what follows)
    confidence: float | None = None  # for OCR'd text: Tesseract's mean word confidence, 0-100


@dataclass
class ExtractedDocument:
    """What the extract stage returns: ordered elements, page count and warnings a person can read."""

    source: str
    title: str
    pages: int
    elements: list[Element]
    language: str = "ko"
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(e.text for e in self.elements if e.text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractedDocument:
        elements = [
            Element(**{**e, "table": Table(**e["table"]) if e.get("table") else None})
            for e in data["elements"]
        ]
        return cls(**{**data, "elements": elements})


@dataclass
class Chunk:
    """A piece of a document sized for embedding and retrieval."""

    chunk_id: str
    document_id: str
    version: str
    source: str
    title: str
    page_start: int
    page_end: int
    heading: str
    kind: ElementKind
    text: str
    tokens: int

    @property
    def search_text(self) -> str:
        """What the keyword index and the embedder see: title and heading give a chunk context."""
        context = " · ".join(part for part in (self.title, self.heading) if part)
        return f"{context}\n{self.text}" if context else self.text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchHit:
    """One ranked chunk returned by a search."""

    chunk_id: str
    document_id: str
    source: str
    title: str
    page_start: int
    page_end: int
    heading: str
    kind: ElementKind
    text: str
    score: float

    @property
    def page(self) -> int:
        return self.page_start

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "page": self.page_start,
            "page_end": self.page_end,
            "chunk_id": self.chunk_id,
            "score": round(self.score, 6),
            "heading": self.heading,
            "text": self.text,
        }


@dataclass
class StageTiming:
    stage: str
    seconds: float
    attempts: int = 1


@dataclass
class RunRecord:
    """What happened to one file in one run: the thing `hanrag status` and notifications show."""

    run_id: str
    user_id: str
    source: str
    document_id: str
    version: str
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    stages: list[StageTiming] = field(default_factory=list)
    pages: int = 0
    chunks: int = 0
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None
    failed_stage: str | None = None
    summary: str = ""
    worker: str = ""  # "host:pid" of the process running it, so a restart can tell an interrupted run
    embedded: int = 0  # chunks sent to the embedding model
    reused: int = 0  # chunks whose vector was already computed (unchanged text of an earlier version, …)

    @property
    def durations(self) -> dict[str, float]:
        return {s.stage: round(s.seconds, 3) for s in self.stages}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**{**data, "stages": [StageTiming(**s) for s in data.get("stages", [])]})


# ---------------------------------------------------------------------------- step state

@dataclass(frozen=True)
class Upload:
    """The file a run ingests: its key in the uploads `BlobStore` (a file name locally, an S3 key on
    AWS) and, on AWS, the bucket and object version the event named (the idempotency key), and the
    event's place in the order of the key's events (`sequencer`): a later upload or delete compares
    greater as a plain string. Empty locally, where one process takes a user's files in order."""

    key: str
    bucket: str = ""
    version_id: str = ""
    etag: str = ""
    sequencer: str = ""


@dataclass(frozen=True)
class Batch:
    """Chunks [start, end): one item of the fan-out stage."""

    start: int
    end: int


@dataclass(frozen=True)
class EmbeddedBatch:
    """What one fan-out item left: the vectors' artifact key and the time it took."""

    start: int
    end: int
    key: str
    seconds: float = 0.0
    attempts: int = 1
    embedded: int = 0  # chunks the model embedded
    reused: int = 0  # chunks whose vector came from the vector cache

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def artifact_prefix(ref: DocumentRef) -> str:
    """Key prefix of one version's artifacts in the `BlobStore`."""
    return f"{ref.user_id}/{ref.document_id}/{ref.version[:16]}/"


@dataclass(frozen=True)
class IngestState:
    """What passes from step to step for one file: references and counts, never text or vectors
    (those are artifacts in the `BlobStore`). The same value in the local runner and in the Step
    Functions state; `to_dict` is the state machine's JSON, whose keys `pipeline.definition.StateField`
    names."""

    upload: Upload
    ref: DocumentRef
    run_id: str
    started_at: float
    pages: int = 0
    chunks: int = 0
    title: str = ""
    summary: str = ""
    warnings: tuple[str, ...] = ()
    stages: tuple[StageTiming, ...] = ()
    skipped: bool = False
    batches: tuple[Batch, ...] = ()
    embedded: tuple[EmbeddedBatch, ...] = ()
    chunks_embedded: int = 0  # summed from `embedded` by the index step, which lets the batches go
    chunks_reused: int = 0

    @property
    def artifacts(self) -> str:
        return artifact_prefix(self.ref)

    def timed(self, stage: str, seconds: float, attempts: int = 1) -> IngestState:
        return replace(self, stages=(*self.stages, StageTiming(stage, round(seconds, 3), attempts)))

    def warned(self, *warnings: str) -> IngestState:
        """The state with more warnings, kept to the first MAX_WARNINGS on every runner."""
        return replace(self, warnings=(*self.warnings, *warnings)[:MAX_WARNINGS])

    def record(self, status: RunStatus, reason: str | None = None, failed_stage: str | None = None,
               finished_at: float | None = None) -> RunRecord:
        ref = self.ref
        return RunRecord(
            run_id=self.run_id, user_id=ref.user_id, source=ref.source, document_id=ref.document_id,
            version=ref.version, status=status, started_at=self.started_at, finished_at=finished_at,
            stages=[StageTiming(s.stage, s.seconds, s.attempts) for s in self.stages], pages=self.pages,
            chunks=self.chunks, warnings=list(self.warnings), reason=reason, failed_stage=failed_stage,
            summary=self.summary, embedded=self.chunks_embedded, reused=self.chunks_reused,
        )

    def to_dict(self) -> dict[str, Any]:
        run = {"run_id": self.run_id, "started_at": self.started_at, "pages": self.pages, "chunks": self.chunks,
               "title": self.title, "summary": self.summary, "warnings": list(self.warnings),
               "stages": [asdict(s) for s in self.stages], "embedded": self.chunks_embedded,
               "reused": self.chunks_reused}
        return {"upload": asdict(self.upload), "ref": asdict(self.ref), "run": run, "artifacts": self.artifacts,
                "skipped": self.skipped, "batches": [asdict(b) for b in self.batches],
                "embedded": [e.to_dict() for e in self.embedded]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestState:
        """Also reads a state the state machine added to (`error`, `failed_stage`, `attempt` are ignored)."""
        run = data.get("run", {})
        return cls(
            upload=Upload(**data["upload"]), ref=DocumentRef(**data["ref"]), run_id=run["run_id"],
            started_at=run["started_at"], pages=run.get("pages", 0), chunks=run.get("chunks", 0),
            title=run.get("title", ""), summary=run.get("summary", ""), warnings=tuple(run.get("warnings", ())),
            stages=tuple(StageTiming(**s) for s in run.get("stages", ())), skipped=bool(data.get("skipped")),
            batches=tuple(Batch(**b) for b in data.get("batches", ())),
            embedded=tuple(EmbeddedBatch(**e) for e in data.get("embedded") or ()),
            chunks_embedded=run.get("embedded", 0), chunks_reused=run.get("reused", 0),
        )
