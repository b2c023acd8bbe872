# hanrag — the two commands a new user needs:
#   make demo   set up, ingest the Korean sample PDFs for user "demo", answer a question with citations
#   make test   set up and run the test suite (CI runs exactly this)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock package-lock.json | cksum | cut -d' ' -f1)
export DO_NOT_TRACK := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

QUESTION ?= 도로터널 결로 대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	@scripts/system-packages.sh
	@# the pinned CDK CLI (package-lock.json); without it the `npx cdk synth` test is skipped, not failed
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent || echo "npm ci failed: no CDK CLI"; fi
	@rm -f $(VENV)/.installed-*; touch $@

demo: $(STAMP)
	$(BIN)/hanrag ingest samples --user demo
	$(BIN)/hanrag ask "$(QUESTION)" --user demo

test: $(STAMP)
	@scripts/system-packages.sh --with-browser
	$(BIN)/ruff check pipeline chat infra tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check pipeline chat infra tests bench

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/korquad.py

clean:
	rm -rf $(VENV) .hanrag .pytest_cache
