#!/bin/bash
# Durability as a power cut judges it: blkcache-torture drives nbdkit with
# the power-cut recorder (powercut-recorder.c) preloaded, then
# blkcache-torture --recording replays the run's log against what the
# recorder saw become durable: every FUA write must be on the disk a power
# cut would leave when its reply arrives, and every flush must cover every
# write acknowledged before it was sent.  blkcache must pass in every cache
# mode, with direct I/O on and off, with a 4-block cache and background
# writeback running, and with each way of making a FUA write durable
# (fua=auto, the default, fua=dsync and fua=group).  Two negative controls must fail, or the check proves
# nothing: nbdkit's file plugin behind --filter=fua fuamode=discard (FUA
# writes and flushes acknowledged with no sync), and blkcache with
# -D blkcache.flush_skip_sync=1 (a flush acknowledged before its sync).
# The durable image the recorder kept, read back whole with --verify-log,
# must hold every durable write for blkcache and lack some for the first
# control: the check of the tags agrees with the bytes.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdkit

RECORDER="$(cd "$top_builddir" && pwd)/tests/.libs/powercut-recorder.so"
if [ ! -f "$RECORDER" ]; then
  echo "$0: $RECORDER is not built"
  exit 1
fi

# Sector-aligned requests (the recorder tags 512-byte sectors), a 1 MiB hot
# region over a 256 KiB cache, plain writes followed by flushes (what
# flush_skip_sync breaks) and FUA writes (what fuamode=discard breaks).
workload="--seconds ${POWERCUT_SECONDS:-3} --align 512 --hot-size 1M
  --size 4M --max-request 64K --max-reports 2
  --mix read=30,write=40,fua=8,zero=4,zero-fua=2,trim=3,flush=5,status=3"
geometry="cache-size=256K block-size=64K dirty-expire=1 dirty-background=10"

# recorded_run NAME WANT [NBDKIT-OPTIONS --] PLUGIN-ARGS...: a fresh disk,
# the server under the recorder, the workload, a clean shutdown (the exit
# flush is recorded too), then the power-cut check, which must exit WANT
# (0 or 1); its figures are left in $TESTDIR/NAME.check, the durable image
# the recorder kept in $TESTDIR/NAME.image.
recorded_run ()
{
  name="$1" check_want="$2"; shift 2
  rm -f "$disk"
  make_disk 8M
  rec="$TESTDIR/$name.rec"
  POWERCUT_TARGET="$disk" POWERCUT_LOG="$rec" SERVER_PRELOAD="$RECORDER"
  POWERCUT_IMAGE="$TESTDIR/$name.image"
  export POWERCUT_TARGET POWERCUT_LOG POWERCUT_IMAGE
  start_server "$name" "$@"
  unset POWERCUT_TARGET POWERCUT_LOG POWERCUT_IMAGE SERVER_PRELOAD
  echo "--- $name: $*"
  # shellcheck disable=SC2086
  run_torture 0 "$TESTDIR/$name.out" $workload --log "$TESTDIR/$name.oplog"
  torture_clean "$TESTDIR/$name.out"
  stop_server "$PID"
  grep -q '^end ' "$rec"
  status=0
  "$TORTURE" --verify-log "$TESTDIR/$name.oplog" --recording "$rec" \
    --max-reports 2 >"$TESTDIR/$name.check" 2>&1 || status=$?
  cat "$TESTDIR/$name.check"
  if [ "$status" -ne "$check_want" ]; then
    echo "$0: $name: the power-cut check exited with $status, expected $check_want"
    exit 1
  fi
}

# figure NAME REGEX: the number the check's figures of NAME give for the
# first capture of REGEX (an extended regular expression around ([0-9]+)).
figure ()
{
  sed -En "s/^$2.*/\\1/p" "$TESTDIR/$1.check"
}

# at_least NAME WHAT REGEX MIN: fail unless figure NAME REGEX >= MIN.
at_least ()
{
  n="$(figure "$1" "$3")"
  if [ -z "$n" ] || [ "$n" -lt "$4" ]; then
    echo "$0: $1: $2: ${n:-none}, expected at least $4"
    exit 1
  fi
}

# image_verified NAME WANT: the durable image of run NAME, served by
# nbdkit's file plugin, read back whole by --verify-log against the run's
# log, which must exit WANT: the bytes themselves, not only their tags.
image_verified ()
{
  SERVER_PLUGIN="file" start_server "$1-image" "$TESTDIR/$1.image"
  status=0
  "$TORTURE" --verify-log "$TESTDIR/$1.oplog" --max-reports 1 "$URI" ||
    status=$?
  stop_server "$PID"
  if [ "$status" -ne "$2" ]; then
    echo "$0: $1: --verify-log of the durable image exited with $status," \
      "expected $2"
    exit 1
  fi
}

fua_checked='FUA writes checked: ([0-9]+)'
flushes_checked='flushes checked: ([0-9]+)'
flush_writes='flushes checked: [0-9]+, covering ([0-9]+)'
fua_lost='FUA writes checked: [0-9]+ \([0-9]+ sectors\), ([0-9]+) lost'
flush_lost='flushes checked: .* ([0-9]+) writes lost'

# The workload must reach the moments the check is about, or a clean
# result says nothing.
exercised ()
{
  at_least "$1" "FUA writes checked" "$fua_checked" 20
  at_least "$1" "flushes checked" "$flushes_checked" 10
  at_least "$1" "writes covered by flushes" "$flush_writes" 20
}

make_disk 8M
start=$SECONDS
for cache in writeback writethrough none; do
  for direct in on off; do
    # shellcheck disable=SC2086
    recorded_run "$cache-$direct" 0 "$disk" cache=$cache direct=$direct \
      $geometry
    exercised "$cache-$direct"
  done
done
image_verified writeback-on 0
# The other ways of making a FUA write durable (fua=auto above).
for fua in dsync group; do
  # shellcheck disable=SC2086
  recorded_run "fua-$fua" 0 "$disk" cache=writethrough direct=on fua=$fua \
    $geometry
  exercised "fua-$fua"
done

# (a) FUA writes acknowledged and never synced (fuamode=discard drops the
# flushes as well).
SERVER_PLUGIN="file" recorded_run fua-discard 1 --filter=fua -- "$disk" \
  fuamode=discard
exercised fua-discard
at_least fua-discard "FUA writes lost" "$fua_lost" 1
image_verified fua-discard 1

# (b) Flushes acknowledged before their fdatasync: writes that were cached
# when a flush arrived are not durable when it replies.
# shellcheck disable=SC2086
recorded_run flush-skip-sync 1 -D blkcache.flush_skip_sync=1 -- "$disk" \
  cache=writeback direct=on $geometry
exercised flush-skip-sync
at_least flush-skip-sync "writes lost at flush replies" "$flush_lost" 1

echo "$0: $((SECONDS - start)) s"
