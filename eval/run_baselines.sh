#!/usr/bin/env bash
# Section 3 of eval/RESULTS.md: every baseline config, one after the other (the machine is
# shared: nice, one job at a time). Each run resumes from its checkpoints if interrupted.
#   bash eval/run_baselines.sh            # all configs
#   bash eval/run_baselines.sh ml-100k    # configs whose name starts with ml-100k
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONPATH="${PYTHONPATH:-.}"
for cfg in eval/configs/${1:-}*.toml; do
  echo "== $cfg"
  nice -n 10 python -m llmrank.cli.eval --config "$cfg" "${@:2}"
done
