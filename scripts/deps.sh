#!/usr/bin/env bash
# Installs what portside needs on a Debian/Ubuntu machine, idempotently:
#   scripts/deps.sh run    the engine's runtime packages + the Python venv (.venv)
#   scripts/deps.sh test   the above + what the test suite talks to (registry, dockerd, ...)
# Packages already present are not reinstalled; apt runs only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

run_pkgs=(crun runc iproute2 iptables python3 python3-venv)
test_pkgs=(docker-registry docker.io skopeo busybox-static apache2-utils tmux less procps)

pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "portside: missing system packages: ${missing[*]}; run this as root (sudo)" >&2
    exit 1
  fi
  echo "portside: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The project's own virtualenv. The distribution's python3 comes first when it is 3.11 or
# newer: Debian's is built with PGO and LTO and starts the dashboard ~20% sooner than a
# plain source build (pyenv's, say) found first on PATH. PYTHON=... chooses another.
new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif [ -x /usr/bin/python3 ] && new_enough /usr/bin/python3; then
  py=/usr/bin/python3
else
  py=python3
fi
new_enough "$py" || {
  echo "portside: Python 3.11 or newer is required (found $("$py" --version 2>&1))" >&2; exit 1; }
want=$(readlink -f "$(command -v "$py")")
if [ -x .venv/bin/python ] && [ "$(readlink -f .venv/bin/python)" != "$want" ]; then
  echo "portside: rebuilding .venv on $want" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
extra=""
[ "$mode" = test ] && extra="[test]"
stamp=".venv/.installed-$mode-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extra"
  touch "$stamp"
fi

# Compiled modules: an interpreter started with PYTHONDONTWRITEBYTECODE (or by a user who
# cannot write here) would otherwise compile every module it imports on every start.
.venv/bin/python -m compileall -q -j 0 tui engine themes >/dev/null

# portside's own launcher in place of pip's generated script: pip's imports `re` and runs
# site before the thin client starts, a third of its start (tui/entry.py runs site itself
# when a command does not go to the command server). Kept only for plain paths.
root=$PWD
case $root in
  *[!A-Za-z0-9/._+-]*) ;;  # a path a shebang or a string literal could not hold: pip's stays
  *)
    cat > .venv/bin/portside.new <<LAUNCHER
#!$root/.venv/bin/python -S
# Written by scripts/deps.sh: see tui/entry.py.
import sys

sys.path.insert(1, "$root")
from tui.entry import main

sys.exit(main())
LAUNCHER
    chmod 755 .venv/bin/portside.new
    mv -f .venv/bin/portside.new .venv/bin/portside
    ;;
esac
