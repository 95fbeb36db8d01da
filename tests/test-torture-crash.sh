#!/bin/bash
# Durability: blkcache-torture --log drives the blkcache plugin (writeback
# cache) while the server is killed with SIGKILL; after a restart on the
# same file, --verify-log finds every write that was made durable (FUA, or
# replied before a flush that replied) and nothing older than it.  The same
# log checked against an empty disk must fail, or the check proves nothing.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdkit

oplog="$TESTDIR/oplog"
make_disk 32M

start_server crash "$disk" cache=writeback
torture_start "$TESTDIR/run.out" --seconds 60 --log "$oplog"
sleep 3
kill_server "$PID"
# 3: the server dropped the connections, as it should have.
torture_wait 3
torture_clean "$TESTDIR/run.out"
grep -q '^D ' "$oplog"

start_server restarted "$disk" cache=writeback
"$TORTURE" --verify-log "$oplog" "$URI"

empty="$TESTDIR/empty"
truncate -s 32M "$empty"
start_server empty "$empty"
status=0
"$TORTURE" --verify-log "$oplog" --max-reports 1 "$URI" || status=$?
if [ "$status" -ne 1 ]; then
  echo "$0: --verify-log on an empty disk exited with $status, expected 1"
  exit 1
fi
