#!/bin/bash
# fio's nbd engine, 4 jobs of random writes verified with crc32c.
. "${top_srcdir:-..}/tests/functions.sh"
requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "fio has no nbd engine"; exit 77; }

make_disk 64M
start_server fio "$disk"

fio --name=verify --ioengine=nbd --uri="$URI" --rw=randwrite --bs=4k \
    --bsrange=512-64k --numjobs=4 --size=16M --offset_increment=16M \
    --iodepth=8 --verify=crc32c --verify_fatal=1 --do_verify=1 \
    --verify_state_save=0 --group_reporting --output="$TESTDIR/fio.out"
cat "$TESTDIR/fio.out"
grep -q "err= 0" "$TESTDIR/fio.out"
