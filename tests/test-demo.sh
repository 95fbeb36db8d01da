#!/bin/bash
# make demo (README's first command ends with it): it prints the connect
# hints and the blkcachectl top hint, serves the demo disk with the
# control socket enabled, and then prints nothing while clients work,
# unless VERBOSE=1, which shows nbdkit's debug lines.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh setsid
# make demo runs nbdkit without the sanitizer runtime a sanitized plugin
# needs.
if [ -n "$SANITIZER" ]; then
  echo "$0: make demo runs an unsanitized nbdkit, skipping"; exit 77
fi

# demo NAME [MAKE-VARIABLES...]: make demo on a disk, socket and control
# socket of the test, in its own process group; reads and writes through
# it; stops it; its output is in $TESTDIR/NAME.out.
demo ()
{
  name="$1"; shift
  out="$TESTDIR/$name.out"
  sock="$TESTDIR/$name.sock"
  ctl="$TESTDIR/$name.ctl"
  setsid make -s -C "$top_builddir" demo DEMO_DISK="$TESTDIR/$name.img" \
    DEMO_SOCK="$sock" DEMO_CTL="$ctl" "$@" > "$out" 2>&1 &
  group=$!
  SERVER_PIDS="$SERVER_PIDS $group"
  wait_until 60 test -S "$sock" || { cat "$out"; exit 1; }
  wait_until 10 test -S "$ctl" || { cat "$out"; exit 1; }
  nbdsh -u "nbd+unix:///?socket=$sock" -c '
h.pwrite(b"\x33" * 65536, 0)
h.flush()
assert h.pread(65536, 0) == b"\x33" * 65536
assert h.get_size() == 1024 ** 3
'
  test "$(stat_of flushes)" -ge 1
  kill -- -"$group"
  wait_gone "$group"
  cat "$out"
}

demo quiet
out="$TESTDIR/quiet.out"
grep -qF "nbdinfo 'nbd+unix:///?socket=$TESTDIR/quiet.sock'" "$out"
grep -qF "blkcachectl -s $TESTDIR/quiet.ctl top" "$out"
if grep -q 'debug:' "$out"; then
  echo "$0: make demo printed debug lines"; exit 1
fi
# Nothing after the hints: the last line is the hint about VERBOSE=1.
tail -n 1 "$out" | grep -q 'VERBOSE=1'

demo verbose VERBOSE=1
grep -q 'debug: .*pwrite' "$TESTDIR/verbose.out"
