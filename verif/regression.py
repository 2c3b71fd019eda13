"""The regression report: one record per bench run, merged once per pytest run.

:func:`add` (called by :func:`harness.run_bench`, in whichever xdist worker ran the bench)
writes one record into ``build/reports/parts/<run>/``; :func:`merge` (called once, by the
pytest controller at the end of the session: ``verif/conftest.py``) turns the run's records
into ``build/reports/regression.json`` and ``regression.md``. The run id comes from
``FOURBIT_RUN_ID`` (``adhoc`` outside pytest).
"""

import hashlib
import json
import os
import shutil

from hdl.toolchain import REPORTS

__all__ = ["add", "merge"]


def _parts(run):
    return REPORTS / "parts" / run


def add(record):
    """Store one bench record (a dict with ``unit``, ``simulator``, ``params``, ...)."""
    parts = _parts(os.environ.get("FOURBIT_RUN_ID", "adhoc"))
    parts.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(json.dumps(record["params"], sort_keys=True).encode()).hexdigest()[:8]
    (parts / f"{record['unit']}-{record['simulator']}-{tag}.json").write_text(
        json.dumps(record, indent=1))


def _coverage(c):
    """``hit/bins`` of a record's functional coverage, ``-`` for a bench without bins."""
    return "-" if not c else f"{c['hit']}/{c['bins']}"


def merge(run):
    """Merge one run's records into ``build/reports/regression.json`` and ``regression.md``."""
    parts = _parts(run)
    records = sorted((json.loads(p.read_text()) for p in parts.glob("*.json")),
                     key=lambda r: (r["unit"], json.dumps(r["params"], sort_keys=True),
                                    r["simulator"]))
    if not records:
        return None
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "regression.json").write_text(json.dumps({"tests": records}, indent=1) + "\n")
    lines = ["# Regression", "",
             "| unit | params | simulator | vectors | mismatches | exhaustive | coverage "
             "| seconds | vectors/s | build s | passed |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in records:
        p = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        rate = r["vectors"] / r["seconds"] if r["seconds"] else 0
        sim = r["simulator"] + (" (light)" if r.get("profile") == "light" else "")
        lines.append(f"| {r['unit']} | {p} | {sim} | {r['vectors']} | "
                     f"{r['mismatches']} | {'yes' if r['exhaustive'] else 'no'} | "
                     f"{_coverage(r.get('coverage'))} | "
                     f"{r['seconds']:.1f} | {rate:,.0f} | {r.get('build_seconds', 0):.1f} | "
                     f"{'yes' if r['passed'] else '**NO**'} |")
    (REPORTS / "regression.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(parts, ignore_errors=True)
    return records
