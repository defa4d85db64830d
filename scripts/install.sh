#!/usr/bin/env bash
# Installs portside (system packages, a venv in .venv) and puts `portside` on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh run
target=/usr/local/bin/portside
if [ "$(id -u)" -eq 0 ]; then
  ln -sf "$PWD/.venv/bin/portside" "$target"
else
  mkdir -p "$HOME/.local/bin"
  target="$HOME/.local/bin/portside"
  ln -sf "$PWD/.venv/bin/portside" "$target"
fi
echo "portside installed: $target"
