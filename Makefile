# hanrag — the two commands a new user needs:
#   make demo   set up, ingest the Korean sample PDFs for user "demo", answer a question with citations
#   make test   set up and run the test suite (CI runs exactly this)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUM    := $(shell cat pyproject.toml requirements.lock package-lock.json | cksum | cut -d' ' -f1)
STAMP  := $(VENV)/.installed-$(SUM)
TESTED := $(VENV)/.installed-test-$(SUM)
# pip's resolution of the Lambda image's lock for the image's Python and platform (tests/test_lambda_lock.py)
LAMBDA_REPORT := $(VENV)/lambda-image-report.json
# CPython 3.12 on Debian bookworm (glibc 2.36), x86_64: every manylinux tag that glibc runs
IMAGE_PLATFORM := --python-version 3.12 --implementation cp --abi cp312 \
    $(foreach v,$(shell seq 36 -1 5),--platform manylinux_2_$(v)_x86_64) \
    --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64
export DO_NOT_TRACK := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

QUESTION ?= 도로터널 결로 대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?

.PHONY: setup dev demo test lint bench clean opensearch opensearch-fetch opensearch-stop lambda-lock

setup: $(STAMP)

# Everything the tests use (AWS and CDK libraries, the pinned CDK CLI, Chromium), without running them.
dev: $(TESTED) opensearch-fetch $(LAMBDA_REPORT)

# What the demo needs: the package and its pinned dependencies, and Tesseract for OCR where apt can install it.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	@scripts/system-packages.sh
	@touch $@

# What the tests add: test tools, the AWS and CDK libraries, the pinned CDK CLI, Chromium for the browser test.
$(TESTED): $(STAMP) package-lock.json
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	@scripts/system-packages.sh --with-browser
	@# the pinned CDK CLI (package-lock.json); without it the `cdk synth` test fails
	npm ci --no-audit --no-fund --silent
	@touch $@

# The Lambda image's lock: every package of infra/lambda-requirements.in and below, pinned (within
# requirements.lock's pins, so the image runs what the tests ran) and hashed, for CPython 3.12 on x86_64 Linux.
lambda-lock: $(TESTED)
	$(BIN)/uv pip compile infra/lambda-requirements.in -c requirements.lock --python-version 3.12 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --emit-index-url -o infra/lambda.lock

# What pip installs from that lock on the image's Python and platform, each package with its metadata
# (hash-checked downloads, nothing installed): the offline test checks it resolves completely.
$(LAMBDA_REPORT): infra/lambda.lock $(TESTED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed --no-deps \
	    --require-hashes --target $(VENV)/.lambda-dry-run $(IMAGE_PLATFORM) --report $@.tmp -r infra/lambda.lock
	@mv $@.tmp $@

# A pinned OpenSearch node (Maven Central, checksums checked) in .cache/opensearch: assembled once.
opensearch-fetch:
	@scripts/opensearch.sh fetch

# A single node on 127.0.0.1:9200 for HANRAG_INDEX=opensearch (the tests start their own on 9201).
opensearch:
	@scripts/opensearch.sh start 9200

opensearch-stop:
	@scripts/opensearch.sh stop 9200

demo: $(STAMP)
	$(BIN)/hanrag ingest samples --user demo
	$(BIN)/hanrag ask "$(QUESTION)" --user demo

test: $(TESTED) opensearch-fetch $(LAMBDA_REPORT)
	$(BIN)/ruff check pipeline chat infra tests bench
	$(BIN)/python -m pytest

# ruff, and cfn-lint on the synthesized template of each search size (also part of `make test`)
lint: $(TESTED)
	$(BIN)/ruff check pipeline chat infra tests bench
	$(BIN)/python -m pytest -q tests/test_aws_infra.py -k "cfn_lint or each_search_size"

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/korquad.py

clean:
	rm -rf $(VENV) .hanrag .pytest_cache .cache
