# The README's commands: `make demo` (the embedded default end to end), `make test` (ruff, then every
# test tier), `make test-fast` (the unit tier) and `make mutation` (mutmut, 40-70 min on 2 cores).
# Each creates .venv when missing and installs everything first, so they work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bau-installed
# pip takes these two from this machine's disk; any other version downloads several GB.
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-fast lint mutation install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,cluster,tensorboard,torchreid,mutation]' $(TORCH_PIN)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bau demo

# The app's end-to-end test drives Debian's chromium with Playwright: installed on first use.
BROWSER_STAMP := $(VENV)/.bau-browser

$(BROWSER_STAMP): scripts/install_browser.sh $(STAMP)
	bash scripts/install_browser.sh $(PY)
	touch $(BROWSER_STAMP)

# ruff first (line length, import order, pyflakes; configured in pyproject.toml), then every test tier.
lint: $(STAMP)
	$(PY) -m ruff check .

test: lint $(BROWSER_STAMP)
	$(PY) -m pytest -q

# The unit tier only (pytest -m unit): under a minute.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m unit

# Mutation testing of the method and recipe modules with mutmut ([tool.mutmut] in pyproject.toml); not part of
# `make test`. Results are cached in mutants/: a second run only re-checks the functions that changed. The report
# prints the score by module and exits 1 if a survivor is not listed (equivalent or CUDA-only) in docs/fidelity.md.
MUTATION_JOBS ?= 2

mutation: $(STAMP)
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS)
	$(PY) scripts/mutation_report.py --json mutants/score.json

clean-venv:
	rm -rf $(VENV)
