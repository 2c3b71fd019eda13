#!/usr/bin/env python3
"""``make lint``: Verilator ``--lint-only -Wall`` on every generated module (with the narrow
waivers of ``verif/verilator_waivers.vlt``), then ruff on the Python."""

import subprocess
import sys

from hdl.toolchain import BUILD, ROOT, VERILATOR_WAIVERS, setup_verilator


def main():
    setup_verilator()
    files = sorted((BUILD / "verilog").glob("*.v"))
    if not files:
        sys.exit("lint: no Verilog in build/verilog/: run `make verilog` first")
    failed = []
    for f in files:
        r = subprocess.run(["verilator", "--lint-only", "-Wall", str(VERILATOR_WAIVERS), str(f)],
                           capture_output=True, text=True)
        status = "ok" if r.returncode == 0 else "FAIL"
        print(f"verilator -Wall  {f.name:<32} {status}")
        if r.returncode:
            print(r.stderr)
            failed.append(f.name)
    r = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], cwd=ROOT)
    if r.returncode:
        failed.append("ruff")
    if failed:
        sys.exit(f"lint failed: {', '.join(failed)}")
    print(f"lint: {len(files)} modules clean under -Wall, ruff clean")


if __name__ == "__main__":
    main()
