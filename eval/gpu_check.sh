#!/usr/bin/env bash
# Prepared GPU check for issue 5 (vLLM vs transformers label scoring, parity, prefill FLOP/s
# against a measured matmul rate, faiss-gpu vs CPU). Prints one JSON summary and writes it to
# eval/out/gpu_check/summary.json. Sections that cannot run (no vllm, no faiss GPU) are
# recorded as skipped, so the script always finishes.
#
#   eval/gpu_check.sh              # on a GPU machine: installs .[gpu] if vllm is missing
#   eval/gpu_check.sh --dry-run    # tiny sizes, tiny model: runs on a CPU (installs nothing)
#   SKIP_INSTALL=1 PYTHON=path/to/python eval/gpu_check.sh ...
#
# Offline GPU machines (no registry): pip install fails; the script goes on with what is
# installed. llmrank needs pydantic there: carry wheels into .whl/ and they are installed
# into /tmp/site first (see the device README for the pip download command).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
case " $* " in *" --dry-run "*) SKIP_INSTALL=1 ;; esac  # never pull CUDA wheels for a dry run
if [ "${SKIP_INSTALL:-0}" != 1 ] && ! "$PY" -c "import vllm" 2>/dev/null; then
  "$PY" -m pip install -q -e '.[gpu]' || echo "gpu_check: could not install .[gpu] (offline?); vLLM sections will be skipped" >&2
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" eval/gpu_check.py "$@"
