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
# installed. llmrank's own imports need pydantic there: `eval/gpu_check.sh --fetch-wheels`
# (run where PyPI is reachable) saves the small cp312 wheels into .whl/ (git-ignored; carry
# it), and they are installed into .gpu-site first. vllm itself (hundreds of MB) cannot be
# carried that way: without it the vLLM sections are skipped.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
if [ "${1:-}" = "--fetch-wheels" ]; then
  exec "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
fi
if ! "$PY" -c "import pydantic" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then  # offline GPU image
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target .gpu-site .whl/*.whl \
    && export PYTHONPATH=".gpu-site${PYTHONPATH:+:$PYTHONPATH}"
fi
case " $* " in *" --dry-run "*) SKIP_INSTALL=1 ;; esac  # never pull CUDA wheels for a dry run
if [ "${SKIP_INSTALL:-0}" != 1 ] && ! "$PY" -c "import vllm" 2>/dev/null; then
  "$PY" -m pip install -q --retries 1 --timeout 10 -e '.[gpu]' || echo "gpu_check: could not install .[gpu] (offline?); vLLM sections will be skipped" >&2
fi
# FAISS on the GPU is not in .[gpu] (README, "Install options"): on this disposable machine,
# install faiss-gpu-cu12 over faiss-cpu's files (it installs the same faiss/ package; the later
# install wins); if that fails, faiss-cpu stays and the faiss-gpu section is skipped
if [ "${SKIP_INSTALL:-0}" != 1 ] && ! "$PY" -c "import faiss, sys; sys.exit(faiss.get_num_gpus() < 1)" 2>/dev/null; then
  "$PY" -m pip install -q --retries 1 --timeout 10 faiss-gpu-cu12 || echo "gpu_check: could not install faiss-gpu-cu12; the faiss-gpu section will be skipped" >&2
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" eval/gpu_check.py "$@"
