"""4-bit training study: fp32 vs the paper's 4-bit recipe and its ablations, on two tasks.

    .venv/bin/python -m scripts.study [--tasks digits,teacher] [--epochs N] [--seeds N]
                                      [--models ...] [--configs fp32,4bit,...] [--jobs 2]
                                      [--out build/reports]

Tasks (:data:`TASKS`): ``digits`` (scikit-learn's bundled 8x8 digits, an MLP and a small
CNN: the sanity task) and ``teacher`` (a synthetic task generated in code: 16 inputs on the
4-bit grid, ten classes given by a random tanh teacher network, learned by a five-layer MLP
without normalisation; fp32 itself reaches only about 85%, and 4-bit training loses points
there). Every configuration of a task trains the same models with the same data, seeds,
initialisation, batch order, optimizer and schedule; only the arithmetic differs. In the
4-bit configurations every quantization and GEMM is a call into the bit-exact golden model.
Runs go to ``--jobs`` worker processes. Writes ``study.json``, ``study.md`` and
``study_curves.png`` to the output folder.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # small GEMMs; leave the other core free
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats as _stats  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

from scripts.fourbit_nn import CNN, MLP, DeepMLP, Recipe, cross_entropy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "fp32": Recipe(quantize=False),
    "4bit": Recipe(),
    "no_tpr": Recipe(tpr=False),
    "no_gradscale": Recipe(gradscale=False, fixed_g=6),
    "radix2_fp4": Recipe(radix2=True, tpr=False),
    "exact_acc": Recipe(accumulator="exact"),
    "fp16_first_last": Recipe(fp16_first_last=True),
    "naive": Recipe(tpr=False, gradscale=False, fixed_g=6, radix2=True),
}
CONFIG_NOTES = {
    "fp32": "float32 everywhere, ReLU",
    "4bit": "paper recipe: SAWB int4 W, PACT uint4 X, radix-4 fp4 dY with TPR and per-layer "
            "GradScale, fp16 accumulation, every layer 4-bit",
    "no_tpr": "4bit, but the even fp4 copy of dY feeds both dW and dX",
    "no_gradscale": "4bit, but g = 6 fixed for every layer (a static scale of 64 = batch size)",
    "radix2_fp4": "4bit, but gradients in radix-2 fp4 (levels 2^0..2^6 at 2^-g), no TPR",
    "exact_acc": "4bit, but exact accumulation (one fp16 rounding per output)",
    "fp16_first_last": "4bit, but first and last layers in fp16",
    "naive": "every ingredient off: radix-2 fp4 gradients, no TPR, fixed g = 6",
}
MODELS = {"mlp": MLP, "cnn": CNN, "deep_mlp": DeepMLP}
HPARAMS = dict(batch=64, lr=0.05, momentum=0.9, weight_decay=5e-4, split_seed=0,
               test_fraction=0.25, alpha_grad_scale=1.0)
# The teacher task: the same optimizer; the PACT clips learn at a tenth of the rate. At the
# full rate the last layer's clip of the full 4-bit recipe fell to its floor (0.01) within
# the first epoch (seed 0), which kills the network: a PACT instability, not an arithmetic one.
TEACHER_HPARAMS = dict(HPARAMS, alpha_grad_scale=0.1, n=8000, inputs=16, teacher_hidden=32,
                       teacher_gain=1.5, classes=10, data_seed=1000)


def load_data():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)             # pixels 0..16 -> [0, 1]
    return train_test_split(x, d.target, test_size=HPARAMS["test_fraction"],
                            stratify=d.target, random_state=HPARAMS["split_seed"])


def load_teacher(hp=TEACHER_HPARAMS):
    """The teacher task: inputs uniform on the 16-level grid ``k / 15`` (so that the first
    layer's uint4 quantization loses nothing), labels ``argmax`` of a random network
    ``tanh((x - 1/2) W1 + b1) W2`` with each class's logit standardised over the data (about
    equal classes). Returns ``(x_train, x_test, y_train, y_test)``."""
    r = np.random.default_rng(hp["data_seed"])
    d, h, n = hp["inputs"], hp["teacher_hidden"], hp["n"]
    w1 = r.standard_normal((d, h)) * hp["teacher_gain"] / np.sqrt(d)
    b1 = r.standard_normal(h)
    w2 = r.standard_normal((h, hp["classes"]))
    x = (r.integers(0, 16, (n, d)) / 15).astype(np.float32)
    logits = np.tanh((x - 0.5) @ w1 + b1) @ w2
    y = np.argmax((logits - logits.mean(0)) / logits.std(0), axis=1)
    n_test = int(round(n * hp["test_fraction"]))
    return x[n_test:], x[:n_test], y[n_test:], y[:n_test]


DIGITS_CONFIGS = ("fp32", "4bit", "no_tpr", "no_gradscale", "radix2_fp4", "exact_acc",
                  "fp16_first_last")
#: Per task: data loader, models, configurations, default epochs and seeds, hyperparameters.
TASKS = {
    "digits": dict(data=load_data, models=("mlp", "cnn"), configs=DIGITS_CONFIGS,
                   epochs=15, seeds=5, hp=HPARAMS),
    "teacher": dict(data=load_teacher, models=("deep_mlp",), configs=tuple(CONFIGS),
                    epochs=15, seeds=12, hp=TEACHER_HPARAMS),
}


@functools.cache
def task_data(task):
    return TASKS[task]["data"]()


def _params(model):
    """(array, gradient attribute, decay) triples the optimizer updates in place."""
    out = []
    for layer in model.layers:
        out += [(layer, "w", "dw", True), (layer, "b", "db", False)]
        if layer.prec == "4bit" and layer.pact:
            out.append((layer, "alpha", "dalpha", True))
    return out


def train_step(model, xb, yb, lr, state, hp=HPARAMS):
    """One SGD-momentum step; returns the batch loss."""
    logits = model.forward(xb, train=True)
    loss, d = cross_entropy(logits, yb)
    model.backward(d)
    for i, (obj, name, gname, decay) in enumerate(_params(model)):
        p = getattr(obj, name)
        g = np.asarray(getattr(obj, gname), np.float32)
        if name == "alpha":
            g = g * hp.get("alpha_grad_scale", 1.0)
        if decay:
            g = g + hp["weight_decay"] * p
        v = state.get(i, 0.0) * hp["momentum"] + g
        state[i] = v
        new = p - lr * v
        if name == "alpha":
            new = np.float32(max(float(new), 1e-2))      # PACT clip stays positive
        setattr(obj, name, new.astype(np.float32) if name != "alpha" else new)
    return loss


def accuracy(model, x, y):
    return 100.0 * float(np.mean(np.argmax(model.forward(x, train=False), axis=1) == y))


def run(config, model_name, seed, epochs, data, tick=None, hp=HPARAMS, task="digits"):
    xtr, xte, ytr, yte = data
    rng = np.random.default_rng(seed)
    model = MODELS[model_name](CONFIGS[config], rng)
    steps_per_epoch = -(-len(xtr) // hp["batch"])
    total = epochs * steps_per_epoch
    state, curve, losses, g_curve, step = {}, [], [], [], 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(xtr))
        ep_loss = []
        for i in range(0, len(xtr), hp["batch"]):
            idx = order[i:i + hp["batch"]]
            lr = hp["lr"] * 0.5 * (1.0 + np.cos(np.pi * step / total))   # cosine to 0
            ep_loss.append(train_step(model, xtr[idx], ytr[idx], lr, state, hp))
            step += 1
        losses.append(float(np.mean(ep_loss)))
        curve.append(accuracy(model, xte, yte))
        g_curve.append([la.g for la in model.layers])
        if tick:
            tick()
    layers = model.layers
    return {
        "task": task, "config": config, "model": model_name, "seed": seed, "epochs": epochs,
        "test_acc": curve[-1], "test_acc_curve": curve, "train_loss_curve": losses,
        "train_acc": accuracy(model, xtr, ytr),
        "fp16_overflows": int(sum(la.overflows for la in layers)),
        "fp4_flush_to_zero_frac": [la.grad_flushed / la.grad_elems if la.grad_elems else None
                                   for la in layers],
        "final_g": [la.g for la in layers],
        "g_curve": g_curve,                       # per epoch end: each layer's g
        "g_range": [[min(la.g_trace), max(la.g_trace)] if la.g_trace else None
                    for la in layers],
        "pact_alpha": [float(la.alpha) if la.prec == "4bit" and la.pact else None
                       for la in layers],
        "precisions": [la.prec for la in layers],
        "layer_diagnostics": [la.diagnostics() for la in layers],
        "seconds": time.perf_counter() - t0,
    }


def _job(job):
    """One run in a worker process: ``(task, config, model, seed, epochs)``."""
    task, config, model, seed, epochs = job
    return run(config, model, seed, epochs, task_data(task), hp=TASKS[task]["hp"], task=task)


def summarize(runs, configs, models):
    def stats(vals):
        return {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1))
                if len(vals) > 1 else 0.0, "n": len(vals)}
    summary, std, by_model = {}, {}, {m: {} for m in models}
    for c in configs:
        allv = [r["test_acc"] for r in runs if r["config"] == c]
        if not allv:
            continue
        st = stats(allv)
        summary[c], std[c] = st["mean"], st["std"]
        for m in models:
            vals = [r["test_acc"] for r in runs if r["config"] == c and r["model"] == m]
            if vals:
                s = stats(vals)
                s["fp16_overflows"] = int(sum(r["fp16_overflows"] for r in runs
                                              if r["config"] == c and r["model"] == m))
                fl = [f for r in runs if r["config"] == c and r["model"] == m
                      for f in r["fp4_flush_to_zero_frac"] if f is not None]
                s["fp4_flush_to_zero_frac_mean"] = float(np.mean(fl)) if fl else None
                # Paired with fp32 on the same seed (same initialisation and batch order).
                base = {r["seed"]: r["test_acc"] for r in runs
                        if r["config"] == "fp32" and r["model"] == m}
                d = [r["test_acc"] - base[r["seed"]] for r in runs
                     if r["config"] == c and r["model"] == m and r["seed"] in base]
                if d:
                    s["paired_diff_vs_fp32"] = stats(d)
                by_model[m][c] = s
    return summary, std, by_model


def digits_markdown(summary, std, by_model, meta):
    lines = ["## Digits (8x8), the sanity task", "",
             f"{meta['seeds']} seeds x {len(meta['models'])} models x "
             f"{meta['epochs']} epochs; train {meta['n_train']} / test {meta['n_test']}.", "",
             "Test accuracy (%) at the last epoch, mean +- std over seeds:", "",
             "| config | " + " | ".join(meta["models"]) + " | all | gap to fp32 | "
             + " | ".join(f"{m}: paired diff vs fp32" for m in meta["models"]) + " |",
             "|---|" + "---|" * (2 * len(meta["models"]) + 2)]
    for c in summary:
        cells = [f"{by_model[m][c]['mean']:.2f} +- {by_model[m][c]['std']:.2f}"
                 for m in meta["models"]]
        gap = summary[c] - summary.get("fp32", np.nan)
        pd = [by_model[m][c].get("paired_diff_vs_fp32") for m in meta["models"]]
        pcells = [f"{d['mean']:+.2f} +- {d['std']:.2f}" if d else "-" for d in pd]
        lines.append(f"| `{c}` | " + " | ".join(cells)
                     + f" | {summary[c]:.2f} +- {std[c]:.2f} | {gap:+.2f} | "
                     + " | ".join(pcells) + " |")
    lines += ["", "Paired diff: per seed, this configuration's accuracy minus fp32's (same "
              "initialisation and batch order), mean +- std over seeds."]
    lines += ["", "Diagnostics (sum of fp16 GEMM overflows over all runs; mean fraction of "
              "non-zero fp16 gradient elements that the even fp4 copy flushes to zero):", "",
              "| config | model | fp16 overflows | fp4 flush-to-zero |", "|---|---|---|---|"]
    for c in summary:
        for m in meta["models"]:
            s = by_model[m][c]
            fz = s["fp4_flush_to_zero_frac_mean"]
            lines.append(f"| `{c}` | {m} | {s['fp16_overflows']} | "
                         + (f"{100 * fz:.1f}% |" if fz is not None else "- |"))
    lines += ["", "Configurations:", ""]
    lines += [f"- `{c}`: {CONFIG_NOTES[c]}" for c in summary]
    return lines


def paired_ci(diffs, level=0.95):
    """``[mean, lo, hi]``: the mean of paired differences and its t-interval (``level``);
    ``lo``, ``hi`` are None for fewer than two pairs."""
    d = np.asarray(diffs, np.float64)
    m = float(d.mean())
    if len(d) < 2:
        return [m, None, None]
    h = float(_stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return [m, m - h, m + h]


def _mean_of(items, key):
    vals = [key(x) for x in items]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def task_summary(runs, task, configs, models):
    """One task's results: means, the paired intervals of (full recipe - configuration) by
    seed and model, and per-layer gradient diagnostics averaged over runs."""
    rs = [r for r in runs if r.get("task", "digits") == task]
    acc = {(r["config"], r["model"], r["seed"]): r["test_acc"] for r in rs}
    means = {}
    for c in configs:
        v = [r["test_acc"] for r in rs if r["config"] == c]
        if v:
            means[c] = {"mean": float(np.mean(v)), "n": len(v),
                        "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
    out = {"metric": "test accuracy (%)", "models": list(models),
           **{c: means[c]["mean"] if c in means else None for c in ("fp32", "4bit", "naive")},
           "means": means, "paired_ci": {}, "diagnostics": {}}
    for c in configs:
        pairs = [acc[("4bit", m, sd)] - v for (cc, m, sd), v in acc.items()
                 if cc == c != "4bit" and ("4bit", m, sd) in acc]
        if pairs:
            out["paired_ci"][c] = paired_ci(pairs)
    for c in configs:
        diags = [r["layer_diagnostics"] for r in rs if r["config"] == c
                 and r.get("layer_diagnostics")]
        if not diags or all(x is None for d in diags for x in d):
            continue
        layers = []
        for k in range(len(diags[0])):
            items = [d[k] for d in diags if d[k] is not None]
            layers.append(None if not items else {
                "flushed_frac": _mean_of(items, lambda x: x["flushed_frac"]),
                "saturated_frac": _mean_of(items, lambda x: x["saturated_frac"]),
                "rel_bias_even": _mean_of(items, lambda x: x["rel_bias"]["even"]),
                "rel_bias_odd": _mean_of(items, lambda x: x["rel_bias"]["odd"]),
                "g_min": min(x["g_min"] for x in items),
                "g_max": max(x["g_max"] for x in items),
            })
        out["diagnostics"][c] = layers
    return out


def _pct(v, digits=1):
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def task_markdown(task, ts, meta):
    """The Markdown section of one task summary."""
    tm = meta["tasks"][task]
    lines = [f"## Task `{task}`", "",
             f"{tm['seeds']} seeds x models {', '.join(tm['models'])} x {tm['epochs']} epochs; "
             f"train {tm['n_train']} / test {tm['n_test']}.", "",
             "| config | test accuracy (%) | full recipe minus config, 95% CI (points) | |",
             "|---|---|---|---|"]
    for c, m in ts["means"].items():
        ci = ts["paired_ci"].get(c)
        if ci is None or ci[1] is None:
            cell, verdict = "-" if c == "4bit" else f"{ci[0]:+.2f}", ""
        else:
            cell = f"{ci[0]:+.2f} [{ci[1]:+.2f}, {ci[2]:+.2f}]"
            verdict = ("4bit better" if ci[1] > 0 else "4bit worse" if ci[2] < 0
                       else "no significant difference")
        lines.append(f"| `{c}` | {m['mean']:.2f} +- {m['std']:.2f} | {cell} | {verdict} |")
    lines += ["", "The interval is of the paired difference (same seed and model: same data, "
              "initialisation and batch order), Student t over the pairs; `lo > 0` means "
              "the full recipe beats that configuration significantly.", "",
              "Gradient diagnostics per 4-bit layer (mean over runs): fraction of the non-zero "
              "fp16 gradient elements that the even fp4 copy flushes to zero and that "
              "saturate; relative bias of each copy, sum(fp4 - fp16) / sum(|fp16|) (the "
              "quantity TPR is meant to cancel; radix-2: not measured); the range of g.", "",
              "| config | layer | flushed | saturated | bias even | bias odd | g |",
              "|---|---|---|---|---|---|---|"]
    for c, layers in ts["diagnostics"].items():
        for k, d in enumerate(layers):
            if d is None:
                continue
            bias = ["-" if d[f] is None else f"{100 * d[f]:+.1f}%"
                    for f in ("rel_bias_even", "rel_bias_odd")]
            lines.append(f"| `{c}` | {k} | {_pct(d['flushed_frac'])} | "
                         f"{_pct(d['saturated_frac'], 2)} | {bias[0]} | {bias[1]} | "
                         f"{d['g_min']} .. {d['g_max']} |")
    lines += ["", "Configurations:", ""]
    lines += [f"- `{c}`: {CONFIG_NOTES[c]}" for c in ts["means"]]
    return lines


def plot(path, runs, panels):
    """Test accuracy against epochs, one panel per ``(task, model, configs)``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (task, m, configs) in zip(axes[0], panels, strict=True):
        for c in configs:
            curves = np.array([r["test_acc_curve"] for r in runs if r["config"] == c
                               and r["model"] == m and r.get("task", "digits") == task])
            if not len(curves):
                continue
            ep = np.arange(1, curves.shape[1] + 1)
            mu, sd = curves.mean(0), curves.std(0)
            ax.plot(ep, mu, label=c, lw=2 if c in ("fp32", "4bit") else 1)
            ax.fill_between(ep, mu - sd, mu + sd, alpha=0.15)
        ax.set_title(f"{task} / {m}: test accuracy (mean +- std)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        if task == "digits":
            ax.set_ylim(80, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_g(path, runs, task="teacher", configs=("4bit", "no_tpr", "exact_acc"), seed=0):
    """GradScale's g per layer at each epoch end, one panel per configuration (one seed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sel = [r for c in configs for r in runs if r.get("task", "digits") == task
           and r["config"] == c and r["seed"] == seed and r.get("g_curve")]
    if not sel:
        return
    fig, axes = plt.subplots(1, len(sel), figsize=(5 * len(sel), 3.8), squeeze=False)
    for ax, r in zip(axes[0], sel, strict=True):
        g = np.array([[np.nan if v is None else v for v in row] for row in r["g_curve"]],
                     np.float64)
        for k in range(g.shape[1]):
            if not np.all(np.isnan(g[:, k])):
                ax.plot(np.arange(1, len(g) + 1), g[:, k], marker=".", label=f"layer {k}")
        ax.set_title(f"{task} / {r['model']} / {r['config']}, seed {seed}: g")
        ax.set_xlabel("epoch")
        ax.set_ylabel("GradScale exponent g")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--epochs", type=int, help="every task (default: the task's own)")
    ap.add_argument("--seeds", type=int, help="every task (default: the task's own)")
    ap.add_argument("--models", help="only these models (default: each task's)")
    ap.add_argument("--configs", help="only these configurations (default: each task's)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "reports")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild study.md / study_curves.png / the summaries from the runs "
                         "in an existing study.json, without training")
    args = ap.parse_args(argv)
    if args.report_only:
        old = json.loads((args.out / "study.json").read_text())
        return write_reports(args.out, old["runs"], old["meta"])
    plan = {}
    for task in args.tasks.split(","):
        if task not in TASKS:
            raise SystemExit(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        t = TASKS[task]
        models = [m for m in (args.models.split(",") if args.models else t["models"])
                  if m in t["models"]]
        configs = args.configs.split(",") if args.configs else list(t["configs"])
        for c in configs:
            if c not in CONFIGS:
                raise SystemExit(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
        xtr, xte = task_data(task)[:2]
        plan[task] = {"models": models, "configs": configs,
                      "epochs": args.epochs or t["epochs"], "seeds": args.seeds or t["seeds"],
                      "n_train": len(xtr), "n_test": len(xte),
                      "hparams": {k: v for k, v in t["hp"].items()}}
    jobs = [(task, c, m, s, p["epochs"]) for task, p in plan.items()
            for s in range(p["seeds"]) for m in p["models"] for c in p["configs"]]
    # The slow 4-bit runs first, so that the workers finish together.
    jobs.sort(key=lambda j: j[1] == "fp32")
    t0 = time.perf_counter()
    runs = []
    with tqdm(total=len(jobs), unit="run", desc="study") as bar:
        if args.jobs > 1:
            with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
                for r in pool.imap_unordered(_job, jobs):
                    runs.append(r)
                    bar.set_postfix_str(f"{r['task']}/{r['config']}/{r['model']}/{r['seed']}")
                    bar.update(1)
        else:
            for j in jobs:
                runs.append(_job(j))
                bar.update(1)
    runs.sort(key=lambda r: (list(plan).index(r["task"]), r["seed"], r["model"],
                             plan[r["task"]]["configs"].index(r["config"])))
    meta = {"command": "python -m scripts.study " + " ".join(argv if argv is not None
                                                             else sys.argv[1:]),
            "wall_seconds": time.perf_counter() - t0, "jobs": args.jobs,
            "cpu_seconds": sum(r["seconds"] for r in runs), "tasks": plan,
            "configs": {c: CONFIG_NOTES[c] for p in plan.values() for c in p["configs"]},
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    if "digits" in plan:           # the digits keys of earlier reports
        d = plan["digits"]
        meta.update(epochs=d["epochs"], seeds=d["seeds"], models=d["models"],
                    n_train=d["n_train"], n_test=d["n_test"], hparams=d["hparams"])
    write_reports(args.out, runs, meta)


def write_reports(out, runs, meta):
    plan = meta.get("tasks") or {"digits": {
        "models": meta["models"], "configs": list(meta["configs"]), "epochs": meta["epochs"],
        "seeds": meta["seeds"], "n_train": meta["n_train"], "n_test": meta["n_test"]}}
    meta["tasks"] = plan
    out.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta}
    lines = ["# 4-bit training study", "", f"Command: `{meta['command']}`  ",
             f"Wall time: {meta['wall_seconds']:.0f} s"
             + (f" ({meta['cpu_seconds']:.0f} s of runs"
                f" on {meta.get('jobs', 1)} worker processes)" if "cpu_seconds" in meta else "")
             + ".", ""]
    if "digits" in plan:
        p = plan["digits"]
        drs = [r for r in runs if r.get("task", "digits") == "digits"]
        summary, std, by_model = summarize(drs, p["configs"], p["models"])
        report.update(summary=summary, std=std, by_model=by_model)
        if "fp32" in summary and "4bit" in summary:
            report["gap_4bit_vs_fp32"] = summary["4bit"] - summary["fp32"]
            report["gap_4bit_vs_fp32_by_model"] = {
                m: by_model[m]["4bit"]["mean"] - by_model[m]["fp32"]["mean"]
                for m in p["models"]}
        lines += digits_markdown(summary, std, by_model, {**meta, **p}) + [""]
        for c in summary:
            print(f"digits  {c:16s} {summary[c]:6.2f} +- {std[c]:.2f}  "
                  + "  ".join(f"{m} {by_model[m][c]['mean']:.2f}" for m in p["models"]))
    report["tasks"] = {t: task_summary(runs, t, p["configs"], p["models"])
                       for t, p in plan.items()}
    for t, ts in report["tasks"].items():
        if t != "digits":
            lines += task_markdown(t, ts, meta) + [""]
        for c, ci in ts["paired_ci"].items():
            rng_txt = "" if ci[1] is None else f" [{ci[1]:+.2f}, {ci[2]:+.2f}]"
            print(f"{t:7s} 4bit - {c:16s} {ci[0]:+.2f}{rng_txt}")
    report["runs"] = runs
    (out / "study.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "study.md").write_text("\n".join(lines) + "\n")
    plot(out / "study_curves.png", runs,
         [(t, m, p["configs"]) for t, p in plan.items() for m in p["models"]])
    plot_g(out / "study_g.png", runs)
    print(f"wall {meta['wall_seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()
