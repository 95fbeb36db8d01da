#!/bin/bash
# The systemd units pass systemd-analyze verify, as templates and as an
# instance, alone and with the example drop-in for a block device, with
# no warning: every key known, the executables present,
# the Documentation= page found among the built man pages.  A unit with
# an unknown key and a socket with no listener must fail the same check.
. "${top_srcdir:-..}/tests/functions.sh"
requires systemd-analyze

units="blkcache@.service blkcache@.socket blkcache-metrics@.service
  blkcache-metrics@.timer"
for u in $units; do
  if [ -f "$top_builddir/systemd/$u" ]; then
    cp "$top_builddir/systemd/$u" "$TESTDIR/"
  else
    cp "$top_srcdir/systemd/$u" "$TESTDIR/"
  fi
done
mkdir -p "$TESTDIR/man/man1" "$TESTDIR/man/man8"
ln -s "$(cd "$top_builddir" && pwd)/man/nbdkit-blkcache-plugin.1" "$TESTDIR/man/man1/"
export MANPATH="$TESTDIR/man"

# verify UNIT...: systemd-analyze verify succeeds and prints nothing.
verify ()
{
  status=0
  (cd "$TESTDIR" && systemd-analyze verify "$@") > "$TESTDIR/verify.out" 2>&1 \
    || status=$?
  cat "$TESTDIR/verify.out"
  [ "$status" -eq 0 ] && [ ! -s "$TESTDIR/verify.out" ]
}

# Templates (verified as instance "i") and one instance of each.
for u in $units; do
  verify "./$u"
  verify "./${u/@./@vm1.}"
done

# An instance with the example drop-in for a block device.
mkdir "$TESTDIR/blkcache@vm2.service.d"
cp "$top_srcdir/systemd/blockdev.conf" "$TESTDIR/blkcache@vm2.service.d/"
verify ./blkcache@vm2.service
grep -qx 'DeviceAllow=/dev/sdb rw' "$TESTDIR/blkcache@vm2.service.d/blockdev.conf"

# Negative controls: the check catches a broken unit or drop-in.
echo 'DeviceAlow=/dev/sdb rw' >> "$TESTDIR/blkcache@vm2.service.d/blockdev.conf"
if verify ./blkcache@vm2.service; then
  echo "$0: a drop-in with an unknown key passed"; exit 1
fi
cp "$TESTDIR/blkcache@.socket" "$TESTDIR/good.socket"
echo 'ListenStreem=/run/x.sock' >> "$TESTDIR/blkcache@.socket"
if verify ./blkcache@vm1.socket; then
  echo "$0: a socket with an unknown key passed"; exit 1
fi
sed '/^ListenStream=/d' "$TESTDIR/good.socket" > "$TESTDIR/blkcache@.socket"
if verify ./blkcache@vm1.socket; then
  echo "$0: a socket with no listener passed"; exit 1
fi
cp "$TESTDIR/good.socket" "$TESTDIR/blkcache@.socket"
sed 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/nbdkit|' \
  "$top_builddir/systemd/blkcache@.service" > "$TESTDIR/blkcache@.service"
if verify ./blkcache@vm1.service; then
  echo "$0: a service with a missing executable passed"; exit 1
fi
