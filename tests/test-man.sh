#!/bin/bash
# Every man page source passes podchecker with no error or warning, and
# every built page renders with man -l with no warning.
. "${top_srcdir:-..}/tests/functions.sh"
requires podchecker man

pods=0
for pod in "$top_srcdir"/man/*.pod; do
  podchecker "$pod" > "$TESTDIR/pod.out" 2>&1 || {
    cat "$TESTDIR/pod.out"; exit 1; }
  if grep -q WARNING "$TESTDIR/pod.out"; then
    cat "$TESTDIR/pod.out"; exit 1
  fi
  pods=$((pods + 1))
done

pages=0
for page in "$top_builddir"/man/*.1 "$top_builddir"/man/*.8; do
  MANWIDTH=80 man --warnings -l "$page" > "$TESTDIR/page.out" \
    2> "$TESTDIR/page.err"
  if [ -s "$TESTDIR/page.err" ] || ! grep -q NAME "$TESTDIR/page.out"; then
    echo "$0: $page:"; cat "$TESTDIR/page.err"; exit 1
  fi
  pages=$((pages + 1))
done
if [ "$pods" -ne "$pages" ]; then
  echo "$0: $pods pod sources but $pages rendered pages"; exit 1
fi
