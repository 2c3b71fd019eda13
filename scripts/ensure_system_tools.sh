#!/usr/bin/env bash
# Debian tools the flows need and PyPI does not ship: Icarus Verilog (11.0) and, as the formal
# solver, z3 (the z3-solver wheel's binary is used when Debian's is absent).
# Installs them when missing and we are root; otherwise prints the exact command and fails.
set -euo pipefail
missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system tools: iverilog $(iverilog -V 2>/dev/null | head -n1 | awk '{print $4}') present"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  echo "system tools: installing ${missing[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "missing: ${missing[*]}. Run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
