# Two commands do everything on a fresh machine:  make  &&  make test
# Other flows: make verilog | lint | synth | synth-smoke | study | bench | clean

PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
JOBS     ?= auto
PYTEST   := $(PY) -m pytest

.PHONY: all setup verilog lint test test-golden test-hdl accuracy synth synth-smoke study bench clean

all: verilog

# Virtual environment with every pinned dependency (pyproject.toml), plus Debian's iverilog.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

setup: $(STAMP)
	@bash scripts/ensure_system_tools.sh

verilog: setup
	$(PY) scripts/gen_verilog.py

lint: verilog
	$(PY) scripts/lint.py

# The whole regression: lint, golden unit tests, then every cocotb bench on Icarus and
# Verilator (SIM=icarus or SIM=verilator narrows it; WAVES=1 dumps waves into build/sim/).
test: lint test-golden test-hdl

test-golden: setup
	$(PYTEST) golden/tests -q -n $(JOBS)

test-hdl: setup accuracy
	$(PYTEST) verif -q -n $(JOBS)
	@cat build/reports/regression.md

# Error of fp16 versus exact accumulation against the exact value (golden model).
accuracy: setup
	$(PY) scripts/accumulation_error.py > /dev/null

# Synthesis of every unit for iCE40 UP5K and ECP5-25 (yosys + nextpnr, cached per unit):
# build/reports/synth.{json,md,png}. About 22 min of tool time from an empty cache.
synth: setup
	$(PY) scripts/synth.py

# One small unit on one target: the quick check that the flow works (part of `make test`).
synth-smoke: setup
	$(PYTEST) verif/test_synth_smoke.py -q

# 4-bit training study on scikit-learn's digits (minutes; not part of `make test`).
study: setup
	$(PY) scripts/study.py

# Golden 4-bit GEMM speed against NumPy fp32 matmul.
bench: setup
	$(PY) scripts/bench.py

clean:
	rm -rf build
