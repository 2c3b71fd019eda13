"""A 4-bit training run through the RTL: the study's digits MLP (``scripts/study.py``,
``scripts/fourbit_nn.py``) trained for ``steps`` SGD steps twice from the same seed and the
same batches, once with the golden backend and once with every quantization, GEMM, fp4
conversion, range tracking and GradScale step of its 4-bit layers on the simulated engine
(:class:`engine_driver.RTLBackend`). After every step the master weights, biases, PACT clips,
momentum buffers and GradScale exponents of the two runs must be bit-identical.

Parameters (``FOURBIT_PARAMS``): the engine's, plus ``steps``, ``batch``, ``seed`` and
``report`` (where the JSON record goes). Progress goes to the log: one line per GEMM and
one per step.
"""

import json
import time

import cocotb
import numpy as np
from cocotb.task import bridge
from engine_driver import EnginePorts, RTLBackend, engine_of

import scripts.fourbit_nn as nn
from scripts.study import CONFIGS, HPARAMS, MODELS, load_data, train_step

from scoreboard import Scoreboard, params


def _arrays(model, state):
    """Every array the two runs must agree on, by name."""
    out = {}
    for i, layer in enumerate(model.layers):
        out[f"w{i}"] = np.asarray(layer.w)
        out[f"b{i}"] = np.asarray(layer.b)
        out[f"alpha{i}"] = np.asarray(layer.alpha, np.float32)
        out[f"g{i}"] = np.asarray(-999 if layer.g is None else layer.g, np.int64)
    for k in sorted(state):
        out[f"momentum{k}"] = np.asarray(state[k], np.float32)
    return out


def _bits(x):
    """An array's bits as integers (float32 -> uint32), for a bitwise comparison."""
    x = np.ascontiguousarray(x)
    if x.dtype == np.float32:
        return x.view(np.uint32).astype(np.int64)
    if x.dtype == np.float64:
        return x.view(np.uint64).astype(np.int64)
    return x.astype(np.int64)


@cocotb.test()
async def train_steps(dut):
    p = params()
    e = engine_of(p)
    ports = await EnginePorts(dut, e).start()
    log = dut._log
    steps, batch, seed = p["steps"], p["batch"], p["seed"]
    hp = dict(HPARAMS, batch=batch)
    sb = Scoreboard(f"train-rtl: {steps} steps of the digits MLP, batch {batch}", log)

    def on_gemm(key, cycles, util):
        log.info("    gemm %-22s %7d cycles, MAC utilisation %5.1f%%", key, cycles,
                 100 * util)

    rtl = RTLBackend(ports, progress=on_gemm)

    def run():
        xtr, _, ytr, _ = load_data()
        recipe = CONFIGS["4bit"]
        gold_model = MODELS["mlp"](recipe, np.random.default_rng(seed))
        rtl_model = MODELS["mlp"](recipe, np.random.default_rng(seed))
        data_rng = np.random.default_rng(seed + 1)
        gold_state, rtl_state = {}, {}
        record = {"steps": steps, "batch": batch, "seed": seed, "per_step": []}
        identical = True
        t_all = time.perf_counter()
        for step in range(steps):
            idx = data_rng.choice(len(xtr), batch, replace=False)
            lr = hp["lr"]
            gold_loss = train_step(gold_model, xtr[idx], ytr[idx], lr, gold_state, hp)
            c0, t0 = ports.cycle, time.perf_counter()
            with nn.use_backend(rtl):
                rtl_loss = train_step(rtl_model, xtr[idx], ytr[idx], lr, rtl_state, hp)
            cycles, seconds = ports.cycle - c0, time.perf_counter() - t0
            want, got = _arrays(gold_model, gold_state), _arrays(rtl_model, rtl_state)
            assert want.keys() == got.keys(), (sorted(want), sorted(got))
            bad = []
            for name in want:
                before = sb.mismatches
                sb.compare(_bits(got[name]), _bits(want[name]))
                if sb.mismatches != before:
                    bad.append(name)
            same = not bad and np.float64(rtl_loss).tobytes() == np.float64(gold_loss).tobytes()
            identical &= same
            record["per_step"].append({
                "step": step + 1, "loss": float(rtl_loss), "golden_loss": float(gold_loss),
                "cycles": cycles, "seconds": seconds, "bit_identical": same,
                "differing": bad, "g": [int(la.g) for la in rtl_model.layers]})
            log.info("step %d/%d: loss %.4f (golden %.4f), %d cycles in %.1f s, "
                     "bit-identical: %s", step + 1, steps, rtl_loss, gold_loss, cycles,
                     seconds, "yes" if same else f"NO ({', '.join(bad)})")
        wall = time.perf_counter() - t_all
        record["compared_values"] = sb.vectors
        return record, identical, wall

    record, identical, wall = await bridge(run)()
    per = record["per_step"]
    total_cycles = sum(s["cycles"] for s in per)
    sim_seconds = sum(s["seconds"] for s in per)
    util = {key: {"calls": s["calls"], "macs": s["macs"], "cycles": s["cycles"],
                  "utilization": s["macs"] / (e.macs_per_cycle * s["cycles"])}
            for key, s in sorted(rtl.stats.items())}
    record.update({
        "engine": {"module": e.module_name, "rows": e.rows, "lanes": e.lanes,
                   "slots": e.slots, "accumulator": e.accumulator, "a_depth": e.a_depth,
                   "b_depth": e.b_depth, "dot_latency": e.dot_latency},
        "bit_identical": bool(identical),
        "cycles_per_step": total_cycles / len(per),
        "utilization": util,
        "sim_cycles_per_second": total_cycles / sim_seconds if sim_seconds else None,
        "wall_seconds": wall,
    })
    if p.get("report"):
        with open(p["report"], "w") as f:
            json.dump(record, f, indent=1)
    sb.finish(record["compared_values"], exhaustive=False)
    assert identical, "the RTL run differs from the golden run"
