# Entry points of the project. `make run` and `make test` set up everything they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROTOS := $(wildcard protos/crm/v1/*.proto)
GENERATED := crm/v1/.generated-stamp

# Settings come from CRM_* environment variables (`make run CRM_LISTEN=...` works too); their
# defaults live in crm/settings.py alone, and `.venv/bin/crm-server --help` lists them.

.PHONY: run run-distributed test lint unit proto bench clean help kafka mutate postgres-binaries

help:
	@echo "make run    - start the whole system (embedded mode); crm-server --help lists its settings"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make proto  - regenerate Python code from protos/"
	@echo "make lint   - ruff, mypy and the import contracts only"
	@echo "make mutate - mutation testing of the pure core (slow, not in CI); MODULE=crm/envelope.py for one file"
	@echo "make bench  - storage, gRPC, latency, lag and memory figures beside baselines (BENCH_ARGS=--quick: ~2 min)"
	@echo "make run-distributed - broker, gRPC server, relay and projection worker on one machine"
	@echo "make kafka  - a local single-node Kafka broker (KRaft, needs Java 17 and Maven) on 127.0.0.1:9092"
	@echo "make postgres-binaries - install PostgreSQL's binaries for the tests where missing (apt-get, as root)"

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
	$(VENV)/bin/crm-server

run-distributed: $(GENERATED)
	$(PY) deploy/run_distributed.py

kafka:
	$(PYTHON) deploy/kafka/local_kafka.py --port 9092 --controller-port 9093 \
		$(if $(CRM_DATA_DIR),--data-dir $(CRM_DATA_DIR)/kafka)

lint: $(GENERATED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy crm services projections relay deploy bench tests
	$(VENV)/bin/lint-imports --no-logo

unit: $(GENERATED)
	$(VENV)/bin/pytest -q tests/unit

test: lint postgres-binaries
	$(VENV)/bin/pytest -q

# The tests start a throwaway PostgreSQL (deploy/postgres/local_postgres.py) with this machine's
# binaries; Debian's package brings them where they are missing (needs root, as CI is).
postgres-binaries:
	@$(PYTHON) deploy/postgres/local_postgres.py --check 2>/dev/null || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql)

# Mutation testing of the pure core ([tool.mutmut] in pyproject.toml lists the files), against the
# unit and contract tiers only. One worker: the machine has two cores and other suites run beside it.
# MODULE=crm/envelope.py runs (again) one file's mutants only; mutmut keeps its copy of the code and
# the verdicts in mutants/ (git-ignored). Not in CI: the whole core is some 4,400 mutants, hours here.
MUTATE_MODULE = $(subst /,.,$(MODULE:.py=))
mutate: $(GENERATED)
	$(VENV)/bin/mutmut run --max-children 1 $(if $(MODULE),'$(MUTATE_MODULE).*')
	@echo "Surviving mutants ($(VENV)/bin/mutmut show NAME prints one's diff):"
	@$(VENV)/bin/mutmut results | grep -v ': not checked$$' | grep -F '$(MUTATE_MODULE)' || true

bench: $(GENERATED)
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf crm/v1 $(VENV) .mypy_cache .pytest_cache .ruff_cache mutants
