#!/usr/bin/env bash
# Installs everything the tests need into .venv (and Debian's chromium for the browser tests),
# then runs the whole suite. Used by the README and by CI (.ci/run). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# The end-to-end tests drive Debian's chromium (Playwright's own browser download is not used);
# Noto CJK gives it Japanese glyphs, so the Japanese screenshots show text, not boxes.
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  fi
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then echo "chromium could not be installed: the browser tests cannot run" >&2; exit 1; fi
  echo "note: chromium is not installed, the browser (e2e) tests will be skipped" >&2
fi

# Offline ImageNet weights beside the project, when there (see README).
if [ -z "${KERAS_HOME:-}" ] && [ -d ../shared/weights ]; then
  export KERAS_HOME="$(cd ../shared/weights && pwd)"
fi
export TF_CPP_MIN_LOG_LEVEL=2

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"
