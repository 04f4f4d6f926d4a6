# Entry points of the project. `make run` and `make test` set up everything they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROTOS := $(wildcard protos/crm/v1/*.proto)
GENERATED := crm/v1/.generated-stamp

CRM_LISTEN ?= 127.0.0.1:50051
CRM_DATA_DIR ?= var

.PHONY: run test lint unit proto bench clean help

help:
	@echo "make run    - start the whole system (embedded mode) on $(CRM_LISTEN)"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make proto  - regenerate Python code from protos/"
	@echo "make lint   - ruff and mypy only"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(GENERATED): $(PROTOS) $(STAMP)
	rm -rf crm/v1
	mkdir -p crm/v1
	$(PY) -m grpc_tools.protoc -I protos \
		--python_out=. --grpc_python_out=. \
		--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=. \
		--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=. \
		$(PROTOS)
	echo '"""Generated from protos/crm/v1 by make proto; never edit by hand."""' > crm/v1/__init__.py
	touch $@

proto: $(GENERATED)

run: $(GENERATED)
	$(VENV)/bin/crm-server --listen $(CRM_LISTEN) --data-dir $(CRM_DATA_DIR)

lint: $(GENERATED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy crm services projections tests

unit: $(GENERATED)
	$(VENV)/bin/pytest -q tests/unit

test: lint
	$(VENV)/bin/pytest -q

clean:
	rm -rf crm/v1 $(VENV) .mypy_cache .pytest_cache .ruff_cache
