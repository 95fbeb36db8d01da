#!/bin/bash
# --tls=require with a PSK file (psktool's): nbdinfo, qemu-img and libnbd
# clients that have the key connect, write and read back the data; a
# client without TLS and a client with another key are refused, each
# for that reason.
. "${top_srcdir:-..}/tests/functions.sh"
requires psktool nbdinfo nbdsh qemu-img qemu-io

mkdir "$TESTDIR/key" "$TESTDIR/wrong"
psktool -u alice -p "$TESTDIR/key/keys.psk" >/dev/null
psktool -u alice -p "$TESTDIR/wrong/keys.psk" >/dev/null
! cmp -s "$TESTDIR/key/keys.psk" "$TESTDIR/wrong/keys.psk"

make_disk 16M
start_server tls --tls=require --tls-psk="$TESTDIR/key/keys.psk" -- "$disk"
tls_uri="nbds+unix://alice@/?socket=$SOCK&tls-psk-file=$TESTDIR/key/keys.psk"
wrong_uri="nbds+unix://alice@/?socket=$SOCK&tls-psk-file=$TESTDIR/wrong/keys.psk"
plain_uri="nbd+unix:///?socket=$SOCK"
# qemu's PSK credentials: the directory of keys.psk.
qemu_tls ()
{
  echo "--object tls-creds-psk,id=tls0,endpoint=client,dir=$1,username=alice"
}
qemu_target="driver=nbd,path=$SOCK,tls-creds=tls0"

# With the key: qemu-img writes an image, qemu-io a pattern over it;
# qemu-img, libnbd and nbdinfo read back what was written.
head -c 16M /dev/urandom > "$TESTDIR/src"
# shellcheck disable=SC2046
qemu-img convert -n -f raw $(qemu_tls "$TESTDIR/key") "$TESTDIR/src" \
  --target-image-opts "$qemu_target"
# shellcheck disable=SC2046
qemu-img compare $(qemu_tls "$TESTDIR/key") --image-opts \
  "driver=file,filename=$TESTDIR/src" "$qemu_target" | grep -qx 'Images are identical.'
# shellcheck disable=SC2046
qemu-io $(qemu_tls "$TESTDIR/key") -c 'write -P 0xa7 4M 1M' -c flush \
  --image-opts "$qemu_target"
dd if="$TESTDIR/src" of="$TESTDIR/want" bs=1M 2>/dev/null
head -c 1M /dev/zero | tr '\0' '\247' |
  dd of="$TESTDIR/want" bs=1M seek=4 conv=notrunc 2>/dev/null
WANT="$TESTDIR/want" URI="$tls_uri" nbdsh -c '
import os
h.set_uri_allow_local_file(True)
h.connect_uri(os.environ["URI"])
assert h.get_tls_negotiated()
want = open(os.environ["WANT"], "rb").read()
assert h.pread(16 * 1024 * 1024, 0) == want
'
test "$(nbdinfo --size "$tls_uri")" = 16777216
nbdinfo --json "$tls_uri" > "$TESTDIR/info.json"
grep -q '"TLS": true' "$TESTDIR/info.json"
cmp "$disk" "$TESTDIR/want"

# Without TLS: nbdkit refuses to serve the export (NBD_REP_ERR_TLS_REQD).
if nbdinfo "$plain_uri" > "$TESTDIR/plain.out" 2>&1; then
  echo "$0: a client without TLS got the export"; exit 1
fi
cat "$TESTDIR/plain.out"
grep -q 'without TLS' "$TESTDIR/plain.out"
grep -q 'server replied with error to opt_go request' "$TESTDIR/plain.out"
if qemu-img info "$plain_uri" > "$TESTDIR/plain.out" 2>&1; then
  echo "$0: qemu-img without TLS got the export"; exit 1
fi
cat "$TESTDIR/plain.out"
grep -q 'TLS negotiation required' "$TESTDIR/plain.out"

# With another key: the TLS handshake fails, on both sides.
if nbdinfo "$wrong_uri" > "$TESTDIR/wrong.out" 2>&1; then
  echo "$0: a client with a wrong key got the export"; exit 1
fi
cat "$TESTDIR/wrong.out"
grep -q 'gnutls_handshake' "$TESTDIR/wrong.out"
# shellcheck disable=SC2046
if qemu-img info $(qemu_tls "$TESTDIR/wrong") --image-opts "$qemu_target" \
     > "$TESTDIR/wrong.out" 2>&1; then
  echo "$0: qemu-img with a wrong key got the export"; exit 1
fi
cat "$TESTDIR/wrong.out"
grep -q 'TLS handshake failed' "$TESTDIR/wrong.out"
test "$(grep -c 'error: gnutls_handshake' "$TESTDIR/tls.log")" -ge 2

# The refused clients changed nothing.
cmp "$disk" "$TESTDIR/want"
