# Two entry points: `make demo` (set-up + demo on the built-in tissue, then on the shipped real
# MERFISH data) and `make test` (set-up + the whole test suite, what CI runs). Set-up is idempotent.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
THREADS ?= 1

.PHONY: setup system-deps demo test bench benchmark benchmark-quick docs notebooks clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt "torch==2.13.0"
	$(PIP) install -c constraints.txt -e ".[test]"
	touch $@

setup: $(VENV)/.installed

system-deps:
	bash scripts/system-deps.sh

demo: setup
	OMP_NUM_THREADS=$(THREADS) $(VENV)/bin/napari-causcell demo --threads $(THREADS) --out causcell_demo

test: setup system-deps
	CAUSCELL_REQUIRE_BROWSER=1 OMP_NUM_THREADS=$(THREADS) CAUSCELL_TEST_THREADS=$(THREADS) $(PY) -m pytest -p no:cacheprovider

bench: setup
	OMP_NUM_THREADS=$(THREADS) $(PY) -m benchmarks.core --threads $(THREADS)

# CausCell vs ablation, foils and peers (sets up the peer venvs under benchmarks/envs first)
benchmark: setup
	OMP_NUM_THREADS=$(THREADS) $(PY) -m benchmarks run --threads $(THREADS)

benchmark-quick: setup
	OMP_NUM_THREADS=$(THREADS) $(PY) -m benchmarks run --quick --threads $(THREADS)

docs: setup
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

notebooks: setup
	OMP_NUM_THREADS=$(THREADS) $(PY) scripts/run_notebooks.py --write

clean:
	rm -rf $(VENV) causcell_demo .pytest_cache docs/_build docs/generated docs/notebooks
