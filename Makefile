# make demo | make test | make bench | make weights
# Each target creates .venv on first use and (re)installs the project only when pyproject.toml or
# constraints.txt changed, so a second call starts at once. `make weights` retrains the shipped
# weights/ on a fixed-seed phantom cohort (about 25 minutes on 2 cores; scratch files in build/).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sarcoma-risk-installed
DEMO_DIR ?= demo-output
WORK_DIR ?= build/train-all

.PHONY: demo test bench weights clean-demo

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing SarcomaRisk and its dependencies into $(VENV) (first time: a few minutes)..."
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sarcoma-risk demo --out $(DEMO_DIR)

# One pytest-xdist worker per core (at most 4), each taking whole test folders (tests/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -n auto --maxprocesses=4

weights: $(STAMP)
	$(VENV)/bin/sarcoma-risk train all --out weights --work $(WORK_DIR)

# Every benchmark runs even when one fails (bench_service needs PostgreSQL); the failures are listed at the end.
bench: $(STAMP)
	@failed=""; for b in benchmarks/bench_*.py; do echo "# $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "benchmarks that failed:$$failed" >&2; exit 1; fi

clean-demo:
	rm -rf $(DEMO_DIR)
