#!/usr/bin/env bash
# What only the tests need beyond scripts/setup.sh: Debian's Chromium, which tests/test_ui.py
# drives through Playwright (Playwright never downloads a browser here). `make test` runs this;
# `make run` does not.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for tests/test_ui.py (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
else
  echo "chromium is missing: install it (Debian: apt-get install chromium) for tests/test_ui.py" >&2
fi
