#!/bin/bash
# nbdkit started as blkcache@vm1.service starts it: the unit's ExecStart,
# with the example configuration (its disk replaced by a test file), on
# a listening socket passed by systemd-socket-activate (LISTEN_FDS), as
# blkcache@vm1.socket passes it.  qemu-io writes a pattern, a new
# connection reads it back, and the unit's control socket answers.  Then
# the same with the TLS line of the example configuration (a PSK file,
# as the README's service section sets up): a client with the key reads
# the pattern, a client without TLS is refused.
. "${top_srcdir:-..}/tests/functions.sh"
requires systemd-socket-activate qemu-io nbdsh psktool

make_disk 64M
sed "s|^DISK=.*|DISK=$disk|" "$top_srcdir/systemd/example.conf" \
  > "$TESTDIR/vm1.conf"

# activate CONF NAME: nbdkit as the unit runs it with the configuration
# CONF, on the socket $TESTDIR/NAME.sock ($SOCK); sets $PID and $log.
activate ()
{
  load_env_file "$1"
  cmd="$(unit_command blkcache@.service ExecStart)"
  echo "ExecStart: $cmd"
  SOCK="$TESTDIR/$2.sock"
  log="$TESTDIR/$2.log"
  SERVER_LOGS="$SERVER_LOGS $log"
  # shellcheck disable=SC2086
  eval "exec systemd-socket-activate -l \"\$SOCK\" \
    -E LD_PRELOAD=\"\$(server_preload)\" -E ASAN_OPTIONS=detect_leaks=0 \
    -E TSAN_OPTIONS=\"\${TSAN_OPTIONS:-}\" $cmd" 2>"$log" &
  PID=$!
  SERVER_PIDS="$SERVER_PIDS $PID"
  wait_until 30 test -S "$SOCK"
}

activate "$TESTDIR/vm1.conf" vm1

URI="nbd+unix:///?socket=$SOCK"
qemu-io -f raw -c 'write -P 0x5c 1M 256k' -c 'flush' "$URI"
nbdsh -u "$URI" -c '
assert h.get_size() == 64 * 1024 * 1024
assert h.pread(256 * 1024, 1024 * 1024) == b"\x5c" * (256 * 1024)
assert h.pread(4096, 0) == bytes(4096)
'
# The disk itself holds the flushed pattern.
cmp <(dd if="$disk" bs=1M skip=1 count=1 2>/dev/null | head -c 262144) \
  <(head -c 262144 /dev/zero | tr '\0' '\134')

# The control socket the unit names, with the cache size of the example.
ctl="$TESTDIR/vm1.ctl"
test -S "$ctl"
test "$(stat_of cache_size_bytes)" = $((1024 * 1024 * 1024))
test "$(stat_of flushes)" -ge 1

# It was socket activated: the command line has no listener of its own,
# systemd-socket-activate passed its socket on, and nbdkit runs as its
# pid (LISTEN_PID).
grep -q '^Execing ' "$log"
test "$(readlink /proc/"$PID"/exe)" = "$(readlink -f "$(command -v nbdkit)")"
stop_server "$PID"

# With TLS, as the example configuration's comment shows.
mkdir "$TESTDIR/key"
psktool -u alice -p "$TESTDIR/key/vm1.psk" >/dev/null
sed -n 's|^#   NBDKIT_ARGS=\(--tls=require --tls-psk=\)/etc/blkcache/vm1.psk$|NBDKIT_ARGS=\1'"$TESTDIR/key/vm1.psk"'|p' \
  "$top_srcdir/systemd/example.conf" >"$TESTDIR/tls.conf"
grep -q '^NBDKIT_ARGS=--tls=require' "$TESTDIR/tls.conf"
sed -n '/^DISK=/p; /^PLUGIN_ARGS=/p' "$TESTDIR/vm1.conf" >>"$TESTDIR/tls.conf"
activate "$TESTDIR/tls.conf" tls
URI="nbds+unix://alice@/?socket=$SOCK&tls-psk-file=$TESTDIR/key/vm1.psk"
URI="$URI" nbdsh -c '
import os
h.set_uri_allow_local_file(True)
h.connect_uri(os.environ["URI"])
assert h.get_tls_negotiated()
assert h.pread(256 * 1024, 1024 * 1024) == b"\x5c" * (256 * 1024)
'
if nbdsh -u "nbd+unix:///?socket=$SOCK" -c 'h.pread(4096, 0)' \
     2>"$TESTDIR/plain.err"; then
  echo "$0: a client without TLS was served"
  exit 1
fi
grep -i tls "$TESTDIR/plain.err"
stop_server "$PID"
