#!/usr/bin/env bash
# Checks what the action staged for examples/demo-workspace: used by .github/workflows/ci.yml
# after `uses: ./`. The step passes the action's outputs in FILES, BYTES, ENGINE, OUT_DIR and
# MANIFEST.
set -euo pipefail

fail() {
  echo "::error title=check-staged::$*"
  exit 1
}

for name in FILES BYTES ENGINE OUT_DIR MANIFEST; do
  [ -n "${!name:-}" ] || fail "output $name is empty"
done
echo "files=$FILES bytes=$BYTES engine=$ENGINE out-dir=$OUT_DIR manifest=$MANIFEST"

case "${RUNNER_OS:-Linux}" in
  Windows) bin=hello-fastcp.exe lib=demo_ffi.dll ;;
  macOS) bin=hello-fastcp lib=libdemo_ffi.dylib ;;
  *) bin=hello-fastcp lib=libdemo_ffi.so ;;
esac

for f in "$bin" "$lib" README.md assets/logo.txt; do
  if [ ! -f "$OUT_DIR/$f" ]; then
    ls -laR "$OUT_DIR" || true
    fail "$f was not staged into $OUT_DIR"
  fi
done

[ "$FILES" -ge 4 ] || fail "files output is $FILES, expected at least 4"
[ "$BYTES" -gt 0 ] || fail "bytes output is $BYTES"
case $ENGINE in
  io-uring | portable) ;;
  *) fail "unexpected engine $ENGINE" ;;
esac
if [ "${RUNNER_OS:-Linux}" != Linux ] && [ "$ENGINE" != portable ]; then
  fail "engine $ENGINE outside Linux"
fi

[ -f "$MANIFEST" ] || fail "manifest $MANIFEST does not exist"
copied=$(grep -c '^{"reason":"copied"' "$MANIFEST" || true)
[ "$copied" = "$FILES" ] || fail "manifest lists $copied copied files, files output is $FILES"
tail -n 1 "$MANIFEST" | grep -q '^{"reason":"summary",' || fail "manifest does not end with a summary line"
echo "staged files and outputs look right"
