#!/bin/bash
# Bad input is refused at start-up with a message an admin can act on.
. "${top_srcdir:-..}/tests/functions.sh"

expect_failure ()
{
  pattern="$1"; shift
  nbdkit_fails "$@"
  if ! grep -q -- "$pattern" "$TESTDIR/fail.log"; then
    echo "$0: 'nbdkit blkcache $*' did not say '$pattern':"
    cat "$TESTDIR/fail.log"
    exit 1
  fi
}

truncate -s 1M "$TESTDIR/disk"
expect_failure "No such file" "$TESTDIR/missing"
expect_failure "not a regular file or a block device" "$TESTDIR"
expect_failure "not a regular file or a block device" /dev/null
expect_failure "unknown parameter 'colour'" "$TESTDIR/disk" colour=blue
expect_failure "direct=sometimes: expected auto, on or off" "$TESTDIR/disk" direct=sometimes
expect_failure "cache=fast: expected writeback, writethrough or none" "$TESTDIR/disk" cache=fast
expect_failure "sched=fifo: expected batch or normal" "$TESTDIR/disk" sched=fifo
expect_failure "writeback-rate=fast: expected bytes a second" "$TESTDIR/disk" writeback-rate=fast
expect_failure "you must give the disk" direct=on
expect_failure "mrc-samples=2000000: must be from 0 to 1048576" "$TESTDIR/disk" mrc-samples=2000000
expect_failure "mrc-window=10: must be at least 1024" "$TESTDIR/disk" mrc-window=10
if [ "$(id -u)" = 0 ]; then
  # root ignores file modes; a file on a read-only bind is not available
  # everywhere, so test permissions as an unprivileged user when one exists
  if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    chmod 0444 "$TESTDIR/disk"
    chmod 0755 "$TESTDIR"
    if env LD_PRELOAD="$(sanitizer_preload)" ASAN_OPTIONS=detect_leaks=0 \
         setpriv --reuid=nobody --regid=nogroup --clear-groups \
         timeout -k 5 30 nbdkit -f -U "$TESTDIR/np.sock" "$PLUGIN" "$TESTDIR/disk" --run true \
         > "$TESTDIR/fail.log" 2>&1; then
      echo "$0: an unwritable disk was served read-write"; exit 1
    fi
    grep -q "Permission denied" "$TESTDIR/fail.log"
    grep -q "use -r" "$TESTDIR/fail.log"
  fi
else
  chmod 0444 "$TESTDIR/disk"
  expect_failure "Permission denied" "$TESTDIR/disk"
fi
