#!/bin/bash
# A flush while other connections keep writing into the blocks it writes
# back: writers on three connections write 4 KiB parts of 8 cache blocks
# and another connection flushes all the time, so that the writers often
# write into a block whose writeback is in flight, and a flush often
# finds a block that was written into again during someone else's
# writeback.  After each reply to the flushes of one more connection,
# every part on the disk file holds the write to it that was acknowledged
# last before that flush was sent, or a later one; after the last one
# nbdkit is killed with SIGKILL, and it still does.  The last round
# holds each writeback's taking of its blocks open for 200 us
# (race_window_us), where a flush could miss blocks that had left the
# dirty index before their writeback's ordered extent was in the queue.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 1M

cat >"$TESTDIR/redirty.py" <<'EOF'
import mmap, os, random, signal, struct, sys, threading, time
import nbd

uri, pid, disk, flushes = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
PART, PARTS, WRITERS = 4096, 8 * 65536 // 4096, 3

# Part p's data: (p, seq) repeated, seq counting that part's writes.  Each
# writer owns the parts p % WRITERS == its number, and writes one at a
# time, so the writes to a part never overlap in time.
acked = [0] * PARTS
stop = threading.Event()

def writer(w):
    h = nbd.NBD()
    h.connect_uri(uri)
    mine = list(range(w, PARTS, WRITERS))
    seq = [0] * PARTS
    try:
        while not stop.is_set():
            p = random.choice(mine)
            seq[p] += 1
            h.pwrite(struct.pack("<QQ", p, seq[p]) * (PART // 16), p * PART)
            acked[p] = seq[p]
    except nbd.Error:
        pass  # the server was killed

def flusher():
    h = nbd.NBD()
    h.connect_uri(uri)
    try:
        while not stop.is_set():
            h.flush()
    except nbd.Error:
        pass

threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
threads.append(threading.Thread(target=flusher))
for t in threads:
    t.start()
def stale(before):
    """The parts whose bytes on the disk file are older than BEFORE says.
    Read with O_DIRECT, as nbdkit writes: a buffered read racing with a
    direct write can leave older bytes in the page cache.  A part may be
    being written again as it is read, so only its first and last 16
    bytes are checked: each must come from a write at least as new."""
    fd = os.open(disk, os.O_RDONLY | os.O_DIRECT)
    data = mmap.mmap(-1, PARTS * PART)   # page aligned, as O_DIRECT needs
    os.preadv(fd, [data], 0)
    os.close(fd)
    bad = []
    for p in range(PARTS):
        for off in (p * PART, (p + 1) * PART - 16):
            got_p, got_seq = struct.unpack_from("<QQ", data, off)
            if before[p] and (got_p != p or got_seq < before[p]):
                bad.append("part %d: the disk holds write %d of part %d, the "
                           "flush followed write %d" % (p, got_seq, got_p,
                                                        before[p]))
                break
    return bad

# After each flush reply the disk file holds what it covers; after the
# last one nbdkit is killed, and it still does.
h = nbd.NBD()
h.connect_uri(uri)
bad = []
for _ in range(flushes):
    before = list(acked)
    h.flush()
    bad += stale(before)
os.kill(pid, signal.SIGKILL)
stop.set()
for t in threads:
    t.join()
bad += stale(before)
for line in bad[:20]:
    print(line)
print("%d flushes checked, the last after %d acknowledged writes to %d "
      "parts; %d stale parts" % (flushes, sum(before),
                                 sum(1 for x in before if x), len(bad)))
sys.exit(1 if bad else 0)
EOF

for round in 1 2 3; do
  : >"$disk"
  truncate -s 1M "$disk"
  window=0
  [ "$round" -lt 3 ] || window=200
  start_server "redirty$round" -D blkcache.race_window_us=$window -- \
    "$disk" cache=writeback
  /usr/bin/python3 "$TESTDIR/redirty.py" "$URI" "$PID" "$disk" 1000
  wait_gone "$PID"
done
