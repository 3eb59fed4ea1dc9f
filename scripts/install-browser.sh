#!/usr/bin/env bash
# Installs what the browser tests need, from the package registries only:
#   - Debian's chromium (apt), when /usr/bin/chromium is missing (needs root, as CI is);
#   - the Python playwright package (pip, pinned) into the project's venv.
# Never runs `playwright install`: the tests drive /usr/bin/chromium through executable_path.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION="1.65.2"  # keep in step with the `test` extra in pyproject.toml
VENV="${VENV:-.venv}"

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-browser: /usr/bin/chromium is missing and installing it needs root" >&2
        exit 1
    fi
    echo "install-browser: installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null \
    || [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("playwright"))')" != "$PLAYWRIGHT_VERSION" ]; then
    echo "install-browser: installing playwright==$PLAYWRIGHT_VERSION into $VENV"
    "$VENV/bin/python" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi

/usr/bin/chromium --version 2>/dev/null
