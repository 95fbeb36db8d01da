#!/bin/bash
# A write acknowledged on connection A, with no flush, is read back on
# connection B, whose copy of the block was hot in the shared cache; in
# every cache mode.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M
for mode in writeback writethrough none; do
  start_server "coh-$mode" "$disk" cache=$mode
  nbdsh -c '
import os, nbd
a = nbd.NBD(); a.connect_uri(os.environ["URI"])
b = nbd.NBD(); b.connect_uri(os.environ["URI"])
for i in range(200):
    off = (i * 104729) % (16 * 1024 * 1024 - 70000)
    n = 1 + (i * 7919) % 65536
    b.pread(n, off); b.pread(n, off)          # hot on B
    data = os.urandom(n)
    a.pwrite(data, off)                         # no FUA, no flush
    assert b.pread(n, off) == data, (i, off, n)
'
  stop_server "$PID"
done
