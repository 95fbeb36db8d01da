#!/bin/bash
# The control socket: every command through blkcachectl, bad commands get
# an error line and the connection goes on, the socket has mode 0600 and
# is removed at exit.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M
# No background writeback, so that only the flush command writes back.
start_control_server control "$disk" dirty-expire=0 dirty-background=100 \
  dirty-limit=100

test "$(stat -c %a "$ctl")" = 600
test "$(stat -c %F "$ctl")" = socket

"$CTL" -s "$ctl" help > "$TESTDIR/help"
for cmd in help stats flush drop-clean "set cache-size" "set dirty-expire" \
    "set dirty-background" "set dirty-limit"; do
  grep -q "^$cmd" "$TESTDIR/help"
done

"$CTL" -s "$ctl" stats > "$TESTDIR/stats"
for name in cache_hits cache_misses dirty_bytes cached_writes direct_writes \
    fua_writes flushes writeback_blocks ordered_in_flight lock_waits \
    dirty_limit_waits dirty_expire_seconds uptime_seconds; do
  grep -qE "^$name [0-9]+$" "$TESTDIR/stats"
done
# Every body line is "NAME VALUE".
! grep -vqE '^[a-z_]+ [0-9]+$' "$TESTDIR/stats"
# Every counter is documented in the man page.
for name in $(awk '{ print $1 }' "$TESTDIR/stats"); do
  grep -q "C<$name>" "$top_srcdir/man/nbdkit-blkcache-plugin.pod" || {
    echo "$0: $name is not in nbdkit-blkcache-plugin.pod"; exit 1; }
done

# Prometheus' text format: HELP and TYPE before each sample.
"$CTL" -s "$ctl" stats prometheus > "$TESTDIR/prom"
/usr/bin/python3 - "$TESTDIR/prom" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "empty"
i = 0
names = set()
while i < len(lines):
    h, t, s = lines[i:i + 3]
    m = re.match(r"# HELP (blkcache_[a-z_]+) \S.*$", h)
    assert m, h
    name = m.group(1)
    kind = t.split()[-1]
    names.add(name)
    if kind == "histogram":
        # Its samples (test-latency.sh checks them): up to the next HELP.
        assert t == "# TYPE %s histogram" % name, t
        i += 2
        while i < len(lines) and not lines[i].startswith("# "):
            assert re.match(r"%s_(bucket|sum|count)\{" % name, lines[i]), lines[i]
            i += 1
        continue
    assert t == "# TYPE %s %s" % (name, kind) and kind in ("counter", "gauge"), t
    assert (kind == "counter") == name.endswith("_total"), name
    assert re.match(r"%s [0-9]+$" % name, s), s
    i += 3
assert "blkcache_cache_hits_total" in names
assert "blkcache_dirty_bytes" in names
assert "blkcache_latency_seconds" in names
PY

# flush: a cached write reaches the file only when the control socket asks.
nbdsh -u "$URI" -c 'h.pwrite(b"\x42" * 65536, 1048576)'
cmp -s <(dd if="$disk" bs=64K skip=16 count=1 status=none) \
       <(head -c 65536 /dev/zero | tr '\0' '\102') && {
  echo "$0: the write reached the disk before any flush"; exit 1; }
"$CTL" -s "$ctl" flush
cmp <(dd if="$disk" bs=64K skip=16 count=1 status=none) \
    <(head -c 65536 /dev/zero | tr '\0' '\102')
test "$(stat_of dirty_bytes)" = 0

# drop-clean: the blocks just read go, the data stays readable.
nbdsh -u "$URI" -c 'h.pread(4 * 1048576, 0)'
"$CTL" -s "$ctl" drop-clean > "$TESTDIR/drop"
grep -qE '^dropped_blocks [1-9][0-9]*$' "$TESTDIR/drop"
test "$(stat_of cache_blocks)" = 0
nbdsh -u "$URI" -c 'assert h.pread(65536, 1048576) == b"\x42" * 65536'

# set: each setting shows in stats.
# A size within the memory available (a quarter of MemAvailable) works.
quarter=$(awk '$1 == "MemAvailable:" { print int($2 / 4 / 64) * 64 "K" }' /proc/meminfo)
"$CTL" -s "$ctl" set cache-size "$quarter" | grep -q '^cache_size_bytes '
test "$(stat_of cache_size_bytes)" = "$(( ${quarter%K} * 1024 ))"
"$CTL" -s "$ctl" set cache-size 2M | grep -q '^cache_size_bytes 2097152$'
test "$(stat_of cache_size_bytes)" = 2097152
"$CTL" -s "$ctl" set dirty-expire 7
test "$(stat_of dirty_expire_seconds)" = 7
"$CTL" -s "$ctl" set dirty-background 20
"$CTL" -s "$ctl" set dirty-limit 40
test "$(stat_of dirty_limit_percent)" = 40
test "$(stat_of dirty_background_percent)" = 20

# Bad commands: an error line and exit status 1, never a crash.
bad ()
{
  status=0
  "$CTL" -s "$ctl" "$@" > /dev/null 2> "$TESTDIR/err" || status=$?
  if [ "$status" -ne 1 ] || ! grep -qE "error: $expect" "$TESTDIR/err"; then
    echo "$0: '$*' gave status $status:"; cat "$TESTDIR/err"; exit 1
  fi
}
expect="unknown command" bad frobnicate
expect="stats: unknown format" bad stats json
expect="flush: wrong number" bad flush now
expect="set: unknown setting" bad set colour blue
expect="set: wrong number" bad set cache-size
expect="cache-size: expected a size" bad set cache-size lots
expect="cache-size: expected a size" bad set cache-size 99999999999999999999
expect="set cache-size: the size must hold at least one block of 65536 bytes" bad set cache-size 1K
# Far beyond the machine's memory: refused with the numbers, nothing changed.
expect="set cache-size: 100T \(109951162777600 bytes\) is more than the memory available, [0-9]+ bytes \(MemAvailable [0-9]+ plus the [0-9]+ bytes the cache holds\)" bad set cache-size 100T
expect="dirty-expire: expected seconds" bad set dirty-expire -1
expect="dirty-background: expected a percentage" bad set dirty-background 101
expect="dirty-background 50 would be above dirty-limit" bad set dirty-background 50
expect="dirty-limit 10 must be at least" bad set dirty-limit 10
expect="too many words" bad set a b c d e
test "$(stat_of cache_size_bytes)" = 2097152

# The raw protocol: an overlong line, an empty line, binary bytes and a
# final line with no newline; the connection keeps working throughout.
/usr/bin/python3 - "$ctl" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def reply():
    lines = []
    while True:
        l = f.readline().decode().rstrip("\n")
        lines.append(l)
        if l == "ok" or l.startswith("error:"):
            return lines
f.write(b"x" * 5000 + b"\n\nhelp\n\xff\xfe\x00junk\r\n"); f.flush()
assert reply() == ["error: line longer than 1024 bytes"]
assert reply()[-1] == "ok"
assert reply()[-1].startswith("error: unknown command")
f.write(b"stats"); f.flush()
s.shutdown(socket.SHUT_WR)
r = reply()
assert r[-1] == "ok" and r[0].startswith("cache_size_bytes "), r
assert f.readline() == b""
PY

errors=$(stat_of control_errors)
test "$errors" = 16

stop_server "$PID"
test ! -e "$ctl"

# cache=none: the control socket works, but there is no cache to resize.
start_control_server none "$disk" cache=none
"$CTL" -s "$ctl" flush
test "$(stat_of cache_capacity_blocks)" = 0
expect="set cache-size: there is no cache" bad set cache-size 1M
