#!/bin/bash
# The fault injector (faultinj.c) under a real nbdkit serving a real file:
# every kind of rule (read, write, sync, fallocate, ioctl, nth) and every
# error (EIO, ENOSPC, EDQUOT, EINTR, EOPNOTSUPP, EINVAL, SHORT0) fires, on
# the target file only, in the rule's range only, as many times as its
# count says, counting again when the rules file is replaced; and a failed
# write leaves the disk as it was, on the synchronous path (cache=none
# direct=off: pwritev2) and on the Linux AIO path (cache=writeback
# direct=on: two cached blocks written back by one flush).  Each expected
# failure is also found in the injector's log, so that no check passes
# because its fault never happened.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 4M
head -c 4M /dev/urandom >"$disk"
faultinj_setup "$disk"

# The synchronous path: every request goes to the disk file.
start_server sync "$disk" cache=none direct=off

# A read of the failed range fails in nbdsh too, and the rest of the disk
# can still be read.
faultinj_rules "read 65536 4096 EIO"
if nbdsh -u "$URI" -c 'h.pread(4096, 65536)' 2>"$TESTDIR/nbdsh.err"; then
  echo "$0: nbdsh read a range the disk refuses"
  exit 1
fi
cat "$TESTDIR/nbdsh.err"
nbdsh -u "$URI" -c 'h.pread(4096, 61440); h.pread(4096, 69632)'
[ "$(faultinj_fired '^read 65536 4096 EIO$')" = 1 ]

cat >"$TESTDIR/sync.py" <<'EOF'
import errno, sys
import nbd
from faultinj import *

uri, disk = sys.argv[1:]
h = nbd.NBD()
h.connect_uri(uri)

# Only the rule's range, and any request that overlaps it.
mark = log_mark()
set_rules("read 65536 4096 EIO")
request_fails(errno.EIO, "a read of the range", h.pread, 4096, 65536)
request_succeeds("a read just before it", h.pread, 4096, 61440)
request_succeeds("a read just after it", h.pread, 4096, 69632)
request_fails(errno.EIO, "a read overlapping its start", h.pread, 8192,
              61440)
check(fired("^read ", mark) == 2, "two failed reads logged")

# COUNT: the rule fires twice, then it is spent; a new rules file (even
# with the same text) starts counting again.
set_rules("read 0 0 EIO 2")
request_fails(errno.EIO, "read 1 of a rule with count 2", h.pread, 4096, 0)
request_fails(errno.EIO, "read 2", h.pread, 4096, 0)
request_succeeds("read 3", h.pread, 4096, 0)
set_rules("read 0 0 EIO 2")
request_fails(errno.EIO, "read 1 after the rules were replaced", h.pread,
              4096, 0)

# The rules are re-read when replaced, and no file means no rules.
set_rules("read 0 4096 EIO")
request_fails(errno.EIO, "a read of 0 under 'read 0 4096'", h.pread, 4096, 0)
request_succeeds("a read of 8192", h.pread, 4096, 8192)
set_rules("read 8192 4096 EIO")
request_succeeds("a read of 0 under 'read 8192 4096'", h.pread, 4096, 0)
request_fails(errno.EIO, "a read of 8192", h.pread, 4096, 8192)
os.remove(RULES)
request_succeeds("a read of 8192 with no rules file", h.pread, 4096, 8192)

# A failed write leaves the disk as it was; once the rule is spent the
# same write lands.
for err, name, off in ((errno.ENOSPC, "ENOSPC", 131072),
                       (None, "EDQUOT", 196608)):
    set_rules("write %d 4096 %s 1" % (off, name))
    before = on_disk(disk, off, 4096)
    request_fails(err, "a write refused with " + name, h.pwrite,
                  b"\xaa" * 4096, off)
    check(on_disk(disk, off, 4096) == before,
          "the disk is unchanged after the %s write" % name)
    check(fired("^write %d 4096 %s$" % (off, name)) == 1,
          "the %s write is logged" % name)
    request_succeeds("the write again", h.pwrite, b"\xaa" * 4096, off)
    check(on_disk(disk, off, 4096) == b"\xaa" * 4096,
          "the disk holds the write")
set_rules("write 0 0 EIO")
request_fails(errno.EIO, "a FUA write (RWF_DSYNC)", h.pwrite,
              b"\xbb" * 4096, 0, nbd.CMD_FLAG_FUA)

# SHORT0 once: the write returns 0 without writing; the server takes that
# as EIO (a write that makes no progress never will), so the disk keeps
# its bytes.  EINTR twice: the read loop retries.
set_rules("write 262144 4096 SHORT0 1")
before = on_disk(disk, 262144, 4096)
request_fails(errno.EIO, "a write that made no progress", h.pwrite,
              b"\xcc" * 4096, 262144)
check(fired("^write 262144 4096 SHORT0$") == 1, "SHORT0 is logged")
check(on_disk(disk, 262144, 4096) == before,
      "the disk keeps its bytes")
mark = log_mark()
set_rules("read 0 4096 EINTR 2")
request_succeeds("a read interrupted twice", h.pread, 4096, 0)
check(fired("^read 0 4096 EINTR$", mark) == 2, "two EINTRs are logged")

# sync: the flush's fdatasync fails.
set_rules("sync 0 0 EIO 1")
request_fails(errno.EIO, "a flush whose fdatasync fails", h.flush)
check(fired("^sync 0 0 EIO$") == 1, "the failed sync is logged")

# fallocate: EIO fails a zero and leaves the disk as it was; EOPNOTSUPP
# makes the server write the zeroes instead.
set_rules("fallocate 327680 65536 EIO")
before = on_disk(disk, 327680, 65536)
request_fails(errno.EIO, "a zero whose fallocate fails", h.zero, 65536,
              327680)
check(on_disk(disk, 327680, 65536) == before,
      "the disk is unchanged after the failed zero")
set_rules("fallocate 0 0 EOPNOTSUPP")
request_succeeds("a zero where fallocate is unsupported", h.zero, 65536,
                 327680)
check(fired("^fallocate 327680 65536 EOPNOTSUPP$") >= 1,
      "the unsupported fallocate is logged")
check(on_disk(disk, 327680, 65536) == bytes(65536),
      "the zeroes were written instead")
set_rules("fallocate 0 0 EINVAL 1")
request_succeeds("a trim whose punch fails with EINVAL (ignored)", h.trim,
                 65536, 393216)
check(fired("^fallocate 393216 65536 EINVAL$") == 1, "EINVAL is logged")

# nth: the third read, write, sync or fallocate of the target after the
# rules were loaded, and no other.
mark = log_mark()
set_rules("nth 3 0 EIO")
request_succeeds("read 1 under 'nth 3'", h.pread, 4096, 0)
request_succeeds("read 2", h.pread, 4096, 0)
request_fails(errno.EIO, "read 3", h.pread, 4096, 0)
request_succeeds("read 4", h.pread, 4096, 0)
check(fired("^read 0 4096 EIO$", mark) == 1, "the third read is logged")
set_rules()
finish()
EOF
faultinj_python "$TESTDIR/sync.py" "$URI" "$disk"
stop_server "$PID"

# Only the target: the same rules, aimed at another file, fail nothing.
logged=$(wc -l <"$FAULTINJ_LOG")
cp "$disk" "$TESTDIR/elsewhere"
FAULTINJ_TARGET="$TESTDIR/elsewhere"
faultinj_rules "read 0 0 EIO" "write 0 0 EIO" "sync 0 0 EIO" \
  "fallocate 0 0 EIO" "nth 1 0 EIO"
start_server other "$disk" cache=none direct=off
nbdsh -u "$URI" -c '
import nbd
h.pread(65536, 0)
h.pwrite(b"\x01" * 4096, 0, nbd.CMD_FLAG_FUA)
h.zero(65536, 65536)
h.flush()
'
stop_server "$PID"
[ "$(wc -l <"$FAULTINJ_LOG")" = "$logged" ]
FAULTINJ_TARGET="$disk"

# The AIO path: blocks 0 and 16 (1M) dirty in the cache, one flush writes
# both back in one io_submit; the write of block 0 is refused.
faultinj_rules
start_server aio "$disk" cache=writeback direct=on block-size=64K
cat >"$TESTDIR/aio.py" <<'EOF'
import errno, sys
import nbd
from faultinj import *

uri, disk = sys.argv[1:]
h = nbd.NBD()
h.connect_uri(uri)
before = on_disk(disk, 0, 65536)
request_succeeds("a cached write of block 0", h.pwrite, b"\xdd" * 65536, 0)
request_succeeds("a cached write of block 16", h.pwrite, b"\xee" * 65536,
                 1 << 20)
set_rules("write 0 65536 EIO")
request_fails(errno.EIO, "a flush whose writeback of block 0 fails",
              h.flush)
check(fired("^write 0 65536 EIO$") >= 1, "the failed AIO write is logged")
check(on_disk(disk, 0, 65536) == before, "block 0 is unchanged on the disk")
check(on_disk(disk, 1 << 20, 65536) == b"\xee" * 65536,
      "block 16 is on the disk")
set_rules()
request_succeeds("a flush with no rules", h.flush)
check(on_disk(disk, 0, 65536) == b"\xdd" * 65536,
      "block 0 is on the disk after it")
finish()
EOF
faultinj_python "$TESTDIR/aio.py" "$URI" "$disk"
stop_server "$PID"

# ioctl: a loop device over a copy of the disk, where trim and zero are
# BLKDISCARD and BLKZEROOUT.
if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null ||
  ! loop=$(losetup -f --show "$TESTDIR/elsewhere" 2>/dev/null); then
  echo "$0: no loop device: the ioctl rules are not checked"
  exit 0
fi
# Keep the test's exit status for cleanup, which reads it from $?.
trap 'rc=$?; losetup -d "$loop" 2>/dev/null; (exit "$rc"); cleanup' EXIT
faultinj_setup "$loop"
faultinj_rules "ioctl 65536 65536 EIO"
start_server loop "$loop" cache=none
nbdsh -u "$URI" -c '
import errno, nbd
for name, f in (("trim", h.trim), ("zero", h.zero)):
    try:
        f(65536, 65536)
        raise AssertionError(name + " succeeded under an ioctl rule")
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e
h.trim(65536, 0)
'
stop_server "$PID"
[ "$(faultinj_fired '^ioctl 65536 65536 EIO$')" = 2 ]
