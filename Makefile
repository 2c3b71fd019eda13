# Two commands do everything on a fresh machine:  make  &&  make test
# Other flows: make verilog | lint | synth | synth-smoke | study | bench | accuracy | mutate |
#              formal | train-rtl | bitstream | bitstreams | clean
# The flows are the package scripts/, run as modules from here: python -m scripts.<name>.

PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
JOBS     ?= auto
PYTEST   := $(PY) -m pytest

.PHONY: all setup verilog lint test test-golden test-scripts test-hdl accuracy synth synth-smoke \
        study bench mutate formal train-rtl bitstream bitstreams clean

all: verilog

# Virtual environment with every pinned dependency (pyproject.toml), plus Debian's iverilog.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

setup: $(STAMP)
	@bash scripts/ensure_system_tools.sh

# Every registered unit (hdl/units.py), or one unit class with any parameters:
#   make verilog UNIT=DotProduct PARAMS="lanes=32 accumulator=exact"
# Each writes build/verilog/<module>.v, its JSON datasheet and verilator_waivers.vlt.
verilog: setup
ifdef UNIT
	$(PY) -m scripts.generate $(UNIT) $(PARAMS)
else
	$(MAKE) --no-print-directory $(VSTAMP)
endif

# The registered units' Verilog, regenerated when the hardware or the generator changed
# (`make` and `make lint` in one run elaborate them once).
VSTAMP := build/verilog/.generated
$(VSTAMP): $(STAMP) $(wildcard hdl/*.py) scripts/gen_verilog.py scripts/generate.py golden/formats.py
	$(PY) -m scripts.gen_verilog
	@touch $@

lint: verilog
	$(PY) -m scripts.lint

# The whole regression: lint, golden unit tests, the flows' smoke tests, then every cocotb
# bench on Icarus and Verilator (SIM=icarus or SIM=verilator narrows it; WAVES=1 dumps waves
# into build/sim/), and the accumulation-error table.
test: lint test-golden test-scripts test-hdl accuracy

test-golden: setup
	$(PYTEST) golden/tests -q -n $(JOBS)

# The flows' own tests (the training study's smoke test).
test-scripts: setup
	$(PYTEST) scripts/tests -q -n $(JOBS)

test-hdl: setup
	$(PYTEST) verif -q -n $(JOBS) --maxschedchunk 1 -m "not long"
	@cat build/reports/regression.md

# Every formal proof, the long ones included (`make test` runs all but those: the proof that
# the whole int4 rescale is monotone, about 1.5 minutes, and the pipeline primitive's
# credit-mode stream check, about 45 s).
formal: setup
	$(PYTEST) verif/test_formal.py -q -n $(JOBS)

# Error of fp16 versus exact accumulation against the exact value (golden model):
# build/reports/accumulation.{json,md}.
accuracy: setup
	$(PY) -m scripts.accumulation_error > /dev/null
	@echo "accumulation error: build/reports/accumulation.md"

# Synthesis of every unit for iCE40 UP5K and ECP5-25, then the lanes sweep (each design at
# 8..64 lanes, ECP5-85 for the wide ones) and the gate proxy (yosys + nextpnr, cached per
# job): build/reports/synth.{json,md,png} and synth_ratios.png. Long: see the README.
synth: setup
	$(PY) -m scripts.synth

# One small unit on one target: the quick check that the flow works (part of `make test`).
synth-smoke: setup
	$(PYTEST) verif/test_synth_smoke.py -q

# 4-bit training study: digits (sanity) and the synthetic teacher task, fp32 vs the 4-bit
# recipe and its ablations, paired 95% intervals (minutes, two worker processes; not part of
# `make test`, whose flow tests run a one-epoch version).
study: setup
	$(PY) -m scripts.study

# Mutation score of the benches (verif/mutation.py): 200 Yosys mutants of each of 13 units in
# one selectable Verilator build per unit, each under the unit's own bench, survivors checked
# for equivalence: build/reports/mutation.{json,md}. MUTATE_UNITS=a,b reruns some;
# MUTATE_SECONDS=N limits each check to N s (default 150). `make test` runs
# a smoke version (verif/test_mutation.py).
MUTATE_UNITS ?=
MUTATE_SECONDS ?=
mutate: setup
	PYTHONPATH=.:verif $(PY) -m mutation $(if $(MUTATE_UNITS),--units $(MUTATE_UNITS)) \
		$(if $(MUTATE_SECONDS),--seconds $(MUTATE_SECONDS))

# 4-bit training through the RTL: 3 SGD steps of the digits MLP (batch 32) with every 4-bit
# operation on the simulated training engine (Verilator), compared bit for bit with the
# golden run after every step: build/reports/train_rtl.{json,md} (about a minute; `make test`
# runs one step at batch 8, verif/test_train_rtl.py). STEPS=, BATCH= override.
STEPS ?= 3
BATCH ?= 32
train-rtl: setup
	$(PY) -m scripts.train_rtl --steps $(STEPS) --batch $(BATCH)

# The board top (the engine behind a UART protocol, hdl/board.py) for a real board, with
# amaranth-boards and the YoWASP tools: build/bitstream/<board>/ (bitstream, report.json);
# fails when the board's clock is not met. BOARD=ulx3s-25 | ulx3s-85 | icebreaker | tangnano9k;
# then `python -m scripts.board --port <serial port> --board <board>` checks it against
# golden. `make bitstreams` builds all four (minutes each; not part of `make test`, whose board
# bench simulates the same top and protocol).
# The Gowin board's place-and-route and packer (pyproject extra "boards": YoWASP's
# nextpnr-himbaechel-gowin and Apicula's gowin_pack) are installed on first use, not by setup.
BOARDS_STAMP := $(VENV)/.boards-installed
$(BOARDS_STAMP): $(STAMP)
	$(VENV)/bin/pip install -q -e ".[dev,boards]"
	touch $@

BOARD ?= ulx3s-25
bitstream: setup $(BOARDS_STAMP)
	$(PY) -m scripts.bitstream --board $(BOARD)

bitstreams: setup $(BOARDS_STAMP)
	RUN_BITSTREAMS=1 $(PY) -m pytest scripts/tests/test_bitstream.py -q

# Golden 4-bit GEMM speed against NumPy fp32 matmul.
bench: setup
	$(PY) -m scripts.bench

clean:
	rm -rf build
