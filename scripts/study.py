"""4-bit training study on scikit-learn's digits: fp32 vs the paper's 4-bit recipe, ablations.

    .venv/bin/python -m scripts.study [--epochs N] [--seeds N] [--models mlp,cnn]
                                      [--configs fp32,4bit,...] [--out build/reports]

Every configuration trains the same models (an MLP and a small CNN, see
``scripts/fourbit_nn.py``) with the same data split, initialisation seeds, optimizer and
schedule; only the arithmetic differs. In the 4-bit configurations every quantization and
GEMM is a call into the bit-exact golden model. Writes ``study.json``, ``study.md`` and
``study_curves.png`` to the output folder.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # small GEMMs; leave the other core free
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

from scripts.fourbit_nn import CNN, MLP, Recipe, cross_entropy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "fp32": Recipe(quantize=False),
    "4bit": Recipe(),
    "no_tpr": Recipe(tpr=False),
    "no_gradscale": Recipe(gradscale=False, fixed_g=6),
    "radix2_fp4": Recipe(radix2=True, tpr=False),
    "exact_acc": Recipe(accumulator="exact"),
    "fp16_first_last": Recipe(fp16_first_last=True),
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
}
MODELS = {"mlp": MLP, "cnn": CNN}
HPARAMS = dict(batch=64, lr=0.05, momentum=0.9, weight_decay=5e-4, split_seed=0,
               test_fraction=0.25)


def load_data():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)             # pixels 0..16 -> [0, 1]
    return train_test_split(x, d.target, test_size=HPARAMS["test_fraction"],
                            stratify=d.target, random_state=HPARAMS["split_seed"])


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


def run(config, model_name, seed, epochs, data, tick=None):
    xtr, xte, ytr, yte = data
    rng = np.random.default_rng(seed)
    model = MODELS[model_name](CONFIGS[config], rng)
    hp = HPARAMS
    steps_per_epoch = -(-len(xtr) // hp["batch"])
    total = epochs * steps_per_epoch
    state, curve, losses, step = {}, [], [], 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(xtr))
        ep_loss = []
        for i in range(0, len(xtr), hp["batch"]):
            idx = order[i:i + hp["batch"]]
            lr = hp["lr"] * 0.5 * (1.0 + np.cos(np.pi * step / total))   # cosine to 0
            ep_loss.append(train_step(model, xtr[idx], ytr[idx], lr, state))
            step += 1
        losses.append(float(np.mean(ep_loss)))
        curve.append(accuracy(model, xte, yte))
        if tick:
            tick()
    layers = model.layers
    return {
        "config": config, "model": model_name, "seed": seed, "epochs": epochs,
        "test_acc": curve[-1], "test_acc_curve": curve, "train_loss_curve": losses,
        "train_acc": accuracy(model, xtr, ytr),
        "fp16_overflows": int(sum(la.overflows for la in layers)),
        "fp4_flush_to_zero_frac": [la.grad_flushed / la.grad_elems if la.grad_elems else None
                                   for la in layers],
        "final_g": [la.g for la in layers],
        "g_range": [[min(la.g_trace), max(la.g_trace)] if la.g_trace else None
                    for la in layers],
        "pact_alpha": [float(la.alpha) if la.prec == "4bit" and la.pact else None
                       for la in layers],
        "precisions": [la.prec for la in layers],
        "seconds": time.perf_counter() - t0,
    }


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


def write_markdown(path, summary, std, by_model, meta):
    lines = ["# 4-bit training study (digits, 8x8)", "",
             f"Command: `{meta['command']}`  ",
             f"Wall time: {meta['wall_seconds']:.0f} s"
             + (f" ({meta['cpu_seconds']:.0f} s CPU)" if "cpu_seconds" in meta else "") + "; "
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
    path.write_text("\n".join(lines) + "\n")


def plot(path, runs, configs, models):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        for c in configs:
            curves = np.array([r["test_acc_curve"] for r in runs
                               if r["config"] == c and r["model"] == m])
            if not len(curves):
                continue
            ep = np.arange(1, curves.shape[1] + 1)
            mu, sd = curves.mean(0), curves.std(0)
            ax.plot(ep, mu, label=c, lw=2 if c in ("fp32", "4bit") else 1)
            ax.fill_between(ep, mu - sd, mu + sd, alpha=0.15)
        ax.set_title(f"{m}: test accuracy (mean +- std over seeds)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(80, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "reports")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild study.md / study_curves.png / the summary from the runs in "
                         "an existing study.json, without training")
    args = ap.parse_args(argv)
    if args.report_only:
        old = json.loads((args.out / "study.json").read_text())
        meta, runs = old["meta"], old["runs"]
        return write_reports(args.out, runs, list(old["summary"]), meta["models"], meta)
    models = args.models.split(",")
    configs = args.configs.split(",")
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    data = load_data()
    t0 = time.perf_counter()
    runs = []
    jobs = [(c, m, s) for s in range(args.seeds) for m in models for c in configs]
    with tqdm(total=len(jobs) * args.epochs, unit="epoch", desc="study") as bar:
        for c, m, s in jobs:
            bar.set_postfix_str(f"{c}/{m}/seed{s}")
            runs.append(run(c, m, s, args.epochs, data, tick=lambda: bar.update(1)))
    wall = time.perf_counter() - t0
    meta = {"command": "python -m scripts.study " + " ".join(argv if argv is not None
                                                             else sys.argv[1:]),
            "wall_seconds": wall, "epochs": args.epochs, "seeds": args.seeds,
            "models": models, "n_train": len(data[0]), "n_test": len(data[1]),
            "hparams": HPARAMS, "configs": {c: CONFIG_NOTES[c] for c in configs},
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "cpu_seconds": time.process_time()}
    write_reports(args.out, runs, configs, models, meta)


def write_reports(out, runs, configs, models, meta):
    summary, std, by_model = summarize(runs, configs, models)
    out.mkdir(parents=True, exist_ok=True)
    report = {"summary": summary, "std": std, "by_model": by_model, "meta": meta,
              "runs": runs}
    if "fp32" in summary and "4bit" in summary:
        report["gap_4bit_vs_fp32"] = summary["4bit"] - summary["fp32"]
        report["gap_4bit_vs_fp32_by_model"] = {
            m: by_model[m]["4bit"]["mean"] - by_model[m]["fp32"]["mean"] for m in models}
    (out / "study.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(out / "study.md", summary, std, by_model, meta)
    plot(out / "study_curves.png", runs, configs, models)
    for c in summary:
        print(f"{c:16s} {summary[c]:6.2f} +- {std[c]:.2f}  "
              + "  ".join(f"{m} {by_model[m][c]['mean']:.2f}" for m in models))
    print(f"wall {meta['wall_seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()
