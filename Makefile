# The README's two commands: `make demo` (the embedded default end to end) and `make test`.
# Both create .venv when missing and install everything first, so they work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bau-installed
# pip takes these two from this machine's disk; any other version downloads several GB.
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,cluster]' $(TORCH_PIN)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bau demo

# The app's end-to-end test drives Debian's chromium with Playwright: installed on first use.
BROWSER_STAMP := $(VENV)/.bau-browser

$(BROWSER_STAMP): scripts/install_browser.sh $(STAMP)
	bash scripts/install_browser.sh $(PY)
	touch $(BROWSER_STAMP)

test: $(STAMP) $(BROWSER_STAMP)
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
