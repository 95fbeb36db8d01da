#!/bin/bash
# sched=batch (the default) runs the threads of each connection under
# SCHED_BATCH, and not nbdkit's main thread, which a --run command is
# forked from.  sched=normal leaves every thread alone.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 4M

# check_policies MIN_BATCH: while a client is connected, at least
# MIN_BATCH threads of the server (0: none) are SCHED_BATCH, and its main
# thread is SCHED_OTHER.  nbdkit starts a connection's request threads
# after the handshake, so wait (up to a minute: sanitizers slow it) for
# them to show.
check_policies ()
{
  nbdsh -u "$URI" -c "
import glob, time
SCHED_OTHER, SCHED_BATCH = 0, 3
assert h.pread(4096, 0) == bytes(4096)
def policies():
    policy = {}
    for stat in glob.glob('/proc/$PID/task/*/stat'):
        tid = int(stat.split('/')[4])
        try:
            text = open(stat).read()
        except FileNotFoundError:
            continue
        # Field 41 of stat, counted after the command name and its ')'.
        policy[tid] = int(text.rsplit(')', 1)[1].split()[38])
    return policy
deadline = time.monotonic() + 60
while True:
    policy = policies()
    batch = [t for t, p in policy.items() if p == SCHED_BATCH]
    if len(batch) >= $1 or time.monotonic() > deadline:
        break
    time.sleep(0.1)
assert policy[$PID] == SCHED_OTHER, policy
assert set(policy.values()) <= {SCHED_OTHER, SCHED_BATCH}, policy
if $1 == 0:
    assert batch == [], policy
else:
    assert len(batch) >= $1, policy
"
}

start_server batch -t 4 -- "$disk"
check_policies 4
stop_server "$PID"

start_server normal -t 4 -- "$disk" sched=normal
check_policies 0
