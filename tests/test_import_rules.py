"""The import rules of the architecture, read from the AST of every module (what a newcomer relies on:
the pure stages stay pure, and both runners reach them only through the step module)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), at any depth of the file; `from a import b` counts
    as `a` and `a.b`, since b may be a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def offending(paths, forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    bad = {}
    for path in paths:
        hits = {name for name in imports(path) if name.startswith(forbidden)}
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    return bad


def test_stages_import_contracts_and_pure_helpers_only():
    forbidden = ("pipeline.adapters", "pipeline.config", "pipeline.runner", "pipeline.steps", "pipeline.lambdas",
                 "pipeline.cli", "boto3", "botocore", "chat")
    assert offending((ROOT / "pipeline/stages").rglob("*.py"), forbidden) == {}


def test_runner_and_lambda_handlers_reach_the_stages_only_through_the_steps():
    paths = [ROOT / "pipeline/runner.py", *(ROOT / "pipeline/lambdas").glob("*.py")]
    assert offending(paths, ("pipeline.stages",)) == {}
    assert "pipeline.steps" in imports(ROOT / "pipeline/runner.py")
    assert "pipeline.steps" in imports(ROOT / "pipeline/lambdas/ingest.py")


def test_infra_imports_only_the_definition_of_ours():
    ours = {name for path in (ROOT / "infra").glob("*.py") for name in imports(path)
            if name.startswith(("pipeline", "chat"))}
    assert {name.rpartition(".")[0] if name.count(".") > 1 else name for name in ours} == {"pipeline.definition"}


def test_chat_never_imports_the_runner_the_steps_the_stages_or_the_lambda_handlers():
    """chat → contracts, adapters and pure helpers: `hanrag serve` is put together in pipeline/serve.py,
    the chat Lambda takes its adapters from the Lambda wiring."""
    forbidden = ("pipeline.runner", "pipeline.steps", "pipeline.stages", "pipeline.lambdas.ingest",
                 "pipeline.lambdas.start", "pipeline.lambdas.search_setup", "pipeline.cli", "pipeline.serve")
    assert offending((ROOT / "chat").rglob("*.py"), forbidden) == {}


CONTRACTS = ("pipeline.models", "pipeline.ports", "pipeline.definition", "pipeline.options", "pipeline.errors",
             "pipeline.names")


def test_adapters_and_settings_never_import_stages_or_runners():
    paths = [*(ROOT / "pipeline/adapters").rglob("*.py"), ROOT / "pipeline/config.py"]
    forbidden = ("pipeline.stages", "pipeline.runner", "pipeline.steps", "pipeline.lambdas", "pipeline.cli")
    assert offending(paths, forbidden) == {}


def test_contracts_import_only_contracts_of_ours():
    paths = [ROOT / f"{name.replace('.', '/')}.py" for name in CONTRACTS]
    ours = {str(p.relative_to(ROOT)): {n for n in imports(p) if n.startswith(("pipeline", "chat"))} for p in paths}
    strays = {path: {n for n in names if not n.startswith(CONTRACTS)} for path, names in ours.items()}
    assert {path: names for path, names in strays.items() if names} == {}
