#!/bin/bash
# A FUA write acknowledged on one connection is read back on another, and
# is in the disk file at once.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M
start_server fua "$disk"

export URI
nbdsh -c '
import os, nbd
a = nbd.NBD(); a.connect_uri(os.environ["URI"])
b = nbd.NBD(); b.connect_uri(os.environ["URI"])
assert a.can_multi_conn() and a.can_fua()
for i in range(64):
    off = (i * 7919 * 513) % (16 * 1024 * 1024 - 70000)
    data = os.urandom(1 + (i * 977) % 65536)
    b.pread(len(data), off)            # b has looked at the old bytes
    a.pwrite(data, off, nbd.CMD_FLAG_FUA)
    assert b.pread(len(data), off) == data, i
    with open(os.environ["TESTDIR"] + "/disk", "rb") as f:
        f.seek(off)
        assert f.read(len(data)) == data, i
'
