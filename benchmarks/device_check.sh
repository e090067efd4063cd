#!/usr/bin/env bash
# The accelerator check (benchmarks/device_check.py), at most 8 minutes: training throughput
# of the default preset for 1, 32 and 256 seeds, a 1,000-run slice of the paper sweep at
# reduced steps, 10^6 theory trajectories, then the full validity map if time is left.
# Usage on the accelerator machine, from the repository root:
#   bash benchmarks/device_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks/results/device}}"
timeout 480 python -m benchmarks.device_check --out "$out" --budget-s 400
