# make demo | make test | make bench
# Each target creates .venv on first use and (re)installs the project only when pyproject.toml or
# constraints.txt changed, so a second call starts at once.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sarcoma-risk-installed
DEMO_DIR ?= demo-output

.PHONY: demo test bench clean-demo

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing SarcomaRisk and its dependencies into $(VENV) (first time: a few minutes)..."
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sarcoma-risk demo --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	@set -e; for b in benchmarks/bench_*.py; do echo "# $$b"; $(PY) $$b; done

clean-demo:
	rm -rf $(DEMO_DIR)
