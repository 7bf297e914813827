# SpaceNet Toolkit: developer commands. A new machine needs two: `make setup`, then `make test` (or `make demo`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PLUGIN_NAME := spacenet_toolkit
VENV := .venv
PY := $(VENV)/bin/python
BUILD := .build
# QGIS_PLUGINPATH for tests and runs: a folder holding a link named spacenet_toolkit to this checkout.
PLUGIN_PATH := $(CURDIR)/$(BUILD)/plugins
PLUGIN_LINK := $(PLUGIN_PATH)/$(PLUGIN_NAME)
QGIS_PROCESS := /usr/bin/qgis_process.bin

# onnxruntime flavour: auto (GPU build where an NVIDIA driver answers), gpu or cpu. `make setup ORT=gpu`.
ORT ?= auto
ifeq ($(ORT),auto)
  ORT_FLAVOUR := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
else ifneq ($(filter $(ORT),gpu cpu),)
  ORT_FLAVOUR := $(ORT)
else
  $(error ORT must be auto, gpu or cpu, not "$(ORT)")
endif
ORT_PACKAGE := $(if $(filter gpu,$(ORT_FLAVOUR)),onnxruntime-gpu,onnxruntime)
ORT_OTHER := $(if $(filter gpu,$(ORT_FLAVOUR)),onnxruntime,onnxruntime-gpu)
DEPS_STAMP := $(VENV)/.deps-$(ORT_PACKAGE).stamp
# training/ has its own venv (PyTorch never enters the plugin's); `make setup` builds it for model adaptation.
TRAIN_PY := training/.venv/bin/python
TRAIN_STAMP := training/.venv/.setup.stamp

# What a test or a run needs to see what a real QGIS process sees (ENVIRONMENT.md traps 3 and 5).
LIBQGIS_CORE = $(shell ldconfig -p | awk '/libqgis_core\.so\./ {print $$NF; exit}')
RUN_ENV = QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR=$(CURDIR)/$(BUILD)/xdg-runtime \
	QGIS_PLUGINPATH=$(PLUGIN_PATH) LD_PRELOAD=$(LIBQGIS_CORE)
# qgis_process's embedded Python ignores the venv: give it the venv's packages (trap 9 and the recipe).
SITE_PACKAGES = $(CURDIR)/$(VENV)/lib/python3.11/site-packages
DEMO_PROFILE := $(CURDIR)/$(BUILD)/demo-profile
PROCESS_ENV = $(RUN_ENV) PYTHONPATH=$(SITE_PACKAGES) QGIS_CUSTOM_CONFIG_PATH=$(DEMO_PROFILE)

QGIS_PROFILE_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default

.PHONY: help setup system test test-unit test-qgis test-e2e demo readme-picture bench lint package install uninstall clean
.PHONY: train-setup train-buildings train-roads eval gpu-pack

help:
	@echo "make setup     install QGIS (Debian), a venv and every dependency (ORT=auto|gpu|cpu), and training/.venv (PyTorch CPU: model adaptation)"
	@echo "make test      run every test tier (unit, in-process QGIS, qgis_process end to end)"
	@echo "make test-qgis340  every test tier again on QGIS 3.40 LTR in a Debian 13 chroot (root)"
	@echo "make demo      run the plugin's main job offline on the shipped sample data"
	@echo "make readme-picture  draw the README's first picture again (footprints over Kampala's imagery)"
	@echo "make bench     benchmarks, each against a baseline in the same run"
	@echo "make lint      ruff and the Qt 6 check (scripts/check_qt6.py)"
	@echo "make train-setup            the training environment (training/.venv: PyTorch, onnx)"
	@echo "make train-buildings [DATA=folder] [MINUTES=60]   train the building model (default data: oam_buildings)"
	@echo "make train-roads [DATA=folder] [MINUTES=30]       train the road model (default: the Vegas baseline)"
	@echo "make gpu-pack [FROM=models/NAME.onnx]   what training/gpu_session.sh needs on a lent GPU machine (.gpu/)"
	@echo "make eval      reproduce every score on the model cards (models/README.md)"
	@echo "make eval-adapt [MINUTES=6] [BASE=model]   adapt on half of Kampala and of Atlanta, score the other half (issue 22)"
	@echo "make package   build dist/$(PLUGIN_NAME)-VERSION.zip for the QGIS plugin manager"
	@echo "make install   link this checkout into your QGIS profile ($(QGIS_PROFILE_DIR))"
	@echo "make uninstall remove that link"

setup: system $(DEPS_STAMP) $(PLUGIN_LINK) $(TRAIN_STAMP)
	@echo "setup complete: onnxruntime flavour $(ORT_FLAVOUR); next: make test, or make demo"

system:
	@scripts/setup-system.sh

$(PY):
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

# rasterio and shapely are built against the system GDAL/GEOS: their wheels misbehave inside QGIS (trap 3).
$(DEPS_STAMP): requirements.txt requirements-dev.txt constraints.txt | $(PY)
	$(PY) -m pip uninstall -y -q $(ORT_OTHER) 2>/dev/null || true
	$(PY) -m pip install --disable-pip-version-check -c constraints.txt --no-binary shapely,rasterio \
		-r requirements.txt -r requirements-dev.txt $(ORT_PACKAGE)
	rm -f $(VENV)/.deps-*.stamp
	touch $@

$(PLUGIN_LINK):
	mkdir -p $(PLUGIN_PATH)
	ln -sfn $(CURDIR) $@

$(BUILD)/xdg-runtime:
	mkdir -p -m 700 $@

check-venv:
	@test -x $(PY) || { echo "No $(VENV) here: run 'make setup' first." >&2; exit 1; }

.PHONY: check-venv
PYTEST = $(RUN_ENV) $(PY) -m pytest

test: check-venv $(PLUGIN_LINK) $(BUILD)/xdg-runtime
	$(PYTEST) tests

test-unit: check-venv $(PLUGIN_LINK)
	$(PY) -m pytest -p no:pytest_qgis -W ignore::pytest.PytestConfigWarning tests/unit

test-qgis: check-venv $(PLUGIN_LINK) $(BUILD)/xdg-runtime
	$(PYTEST) tests/qgis

test-e2e: check-venv $(PLUGIN_LINK) $(BUILD)/xdg-runtime
	$(PYTEST) tests/e2e

# QGIS 3.40 LTR: Debian 13's QGIS, Python 3.13 and numpy 2 in a root file system under .build/qgis340 (built once by
# scripts/qgis340.sh, debootstrap from `make system`), the checkout bind-mounted at its own path; needs root.
QGIS340_TESTS ?= tests
.PHONY: qgis340 test-qgis340
qgis340:
	scripts/qgis340.sh build

test-qgis340: qgis340 $(PLUGIN_LINK)
	scripts/qgis340.sh test $(QGIS340_TESTS)

demo: check-venv $(PLUGIN_LINK) $(BUILD)/xdg-runtime
	$(PROCESS_ENV) $(PY) scripts/demo.py

# The README's first picture (docs/screenshots/footprints_over_imagery.jpg), from the shipped model.
readme-picture: check-venv $(PLUGIN_LINK) $(BUILD)/xdg-runtime
	$(PROCESS_ENV) $(PY) scripts/readme_picture.py

bench: check-venv $(PLUGIN_LINK) $(BUILD)/xdg-runtime
	$(RUN_ENV) $(PY) bench/run.py

# ruff, then scripts/check_qt6.py: no PyQt5-only forms (exec_, unscoped Qt enums, PyQt5 imports, QVariant types).
lint: check-venv
	$(PY) -m ruff check .
	$(PY) scripts/check_qt6.py

package: check-venv
	$(PY) scripts/package.py --output dist

# ---------------------------------------------------------------------------------------------- training
# training/ has its own venv (PyTorch never enters the plugin's). DATA: a folder written by spacenet:fetchtiles.
MINUTES ?=
TRAIN_RUN = OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(TRAIN_PY) -m training.train

train-setup: $(TRAIN_STAMP)

$(TRAIN_STAMP): training/setup.sh training/requirements.txt
	bash training/setup.sh
	touch $@

train-buildings: train-setup
ifdef DATA
	$(TRAIN_PY) -m training.spacenet_data "$(DATA)" --task buildings --out training/cache_spacenet_buildings
	$(TRAIN_RUN) --task buildings --cache training/cache_spacenet_buildings --minutes $(or $(MINUTES),60)
else
	$(TRAIN_PY) -m training.data
	$(TRAIN_RUN) --task buildings --minutes $(or $(MINUTES),60)
endif

train-roads: train-setup
ifdef DATA
	$(TRAIN_PY) -m training.spacenet_data "$(DATA)" --task roads --out training/cache_spacenet_roads
	$(TRAIN_RUN) --task roads --cache training/cache_spacenet_roads --minutes $(or $(MINUTES),60)
else
	$(TRAIN_PY) -m training.roads_baseline --out training/cache_roads
	$(TRAIN_RUN) --task roads --cache training/cache_roads --minutes $(or $(MINUTES),30)
endif

# What a lent GPU machine needs to train (training/gpu_session.sh): packed caches and the initial weights in .gpu/:
# the ImageNet encoder, or with FROM=models/NAME.onnx that exported model's weights, to train it further.
gpu-pack: train-setup
	$(TRAIN_PY) -m training.data
	$(TRAIN_PY) -m training.roads_baseline --out training/cache_roads
	PYTHONPATH=. $(TRAIN_PY) -m training.pack --out .gpu/cache $(if $(FROM),,--initial-weights .gpu/init.pt)
	$(if $(FROM),PYTHONPATH=. $(TRAIN_PY) -m training.from_onnx $(FROM) --out .gpu/init.pt)
	PYTHONPATH=. $(TRAIN_PY) -m training.pack --cache training/cache_roads --out .gpu/cache_roads
	du -sh .gpu

# Issue 22: adapt a shipped model (BASE; by default spacenet:adaptmodel's, buildings_effnet_lite0) on one half of
# Kampala (and of the Atlanta tile), score the other half.
.PHONY: eval-adapt
eval-adapt: check-venv $(PLUGIN_LINK) train-setup
	GDAL_PAM_ENABLED=NO $(RUN_ENV) $(PY) -m training.adapt_eval --minutes $(or $(MINUTES),6) $(if $(BASE),--base $(BASE))

# Runs in the plugin's venv: the scores come from the plugin's own engine and metrics.
eval: check-venv $(PLUGIN_LINK)
	GDAL_PAM_ENABLED=NO $(PY) -m training.engine_eval

install:
	@if [ -e "$(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN_NAME)" ] && [ ! -L "$(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN_NAME)" ]; then \
		echo "$(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN_NAME) exists and is not a link (installed from a zip?): remove it first." >&2; exit 1; fi
	mkdir -p "$(QGIS_PROFILE_DIR)/python/plugins"
	ln -sfn "$(CURDIR)" "$(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN_NAME)"
	@echo "Linked. Restart QGIS and enable 'SpaceNet Toolkit' in Plugins > Manage and Install Plugins."

uninstall:
	@if [ -L "$(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN_NAME)" ]; then \
		rm "$(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN_NAME)" && echo "Removed the link."; \
	else echo "No linked $(PLUGIN_NAME) in $(QGIS_PROFILE_DIR): nothing to do."; fi

clean:
	@if [ -e $(BUILD)/qgis340 ]; then scripts/qgis340.sh clean; fi  # refuses while the chroot has mounts
	rm -rf $(BUILD) dist .pytest_cache .ruff_cache .qgis-settings
