#!/bin/bash
# Every nbdkit command line in README.md's code blocks and in the man
# pages' examples listens safely: on a unix socket (-U), on loopback
# (-i 127.0.0.1, -i ::1, -i localhost), or with --tls=require; or it
# does not listen (--dump-plugin, --help, --version).  The check itself
# must flag a command that listens on every interface without TLS.
. "${top_srcdir:-..}/tests/functions.sh"
requires /usr/bin/python3

cat > "$TESTDIR/check.py" <<'PY'
import re, sys

SAFE = [r"(^|\s)-U\s", r"(^|\s)--unix[=\s]",
        r"(^|\s)(-i|--ipaddr)[=\s]?(127\.0\.0\.1|::1|localhost)(\s|$)",
        r"(^|\s)--tls=require(\s|$)",
        r"(^|\s)--(dump-plugin|help|version)(\s|$)"]

def commands(path):
    """Yield the nbdkit command lines of a file's examples: README code
    fences, POD verbatim paragraphs; continuation lines joined."""
    lines = open(path).read().split("\n")
    pod = path.endswith(".pod")
    fenced = False
    cmd = None
    for line in lines:
        if not pod and line.startswith("```"):
            fenced = not fenced
            continue
        example = line[:1].isspace() if pod else fenced
        if cmd is not None:
            cmd += " " + line.strip().rstrip("\\")
            if not line.rstrip().endswith("\\"):
                yield cmd
                cmd = None
            continue
        if example and re.match(r"\s*nbdkit\s", line):
            if line.rstrip().endswith("\\"):
                cmd = line.strip().rstrip("\\")
            else:
                yield line.strip()

bad = 0
for path in sys.argv[1:]:
    for cmd in commands(path):
        if not any(re.search(p, cmd) for p in SAFE):
            print("%s: unsafe listener: %s" % (path, cmd))
            bad += 1
        else:
            print("%s: ok: %s" % (path, cmd))
sys.exit(1 if bad else 0)
PY

# The check flags each unsafe line of a sample and passes the safe ones.
cat > "$TESTDIR/sample.md" <<'MD'
```
nbdkit blkcache disk.img
nbdkit -p 10809 blkcache \
       disk.img
nbdkit -i 0.0.0.0 blkcache disk.img
nbdkit -i 192.0.2.1 --tls=require --tls-psk=k blkcache disk.img
nbdkit -U /tmp/s blkcache disk.img
nbdkit -i 127.0.0.1 -p 10809 blkcache disk.img
```
nbdkit blkcache outside-a-code-block.img
MD
if /usr/bin/python3 "$TESTDIR/check.py" "$TESTDIR/sample.md" > "$TESTDIR/sample.out"; then
  cat "$TESTDIR/sample.out"; echo "$0: the check passed unsafe examples"; exit 1
fi
cat "$TESTDIR/sample.out"
test "$(grep -c 'unsafe listener' "$TESTDIR/sample.out")" = 3
test "$(grep -c ': ok: ' "$TESTDIR/sample.out")" = 3

/usr/bin/python3 "$TESTDIR/check.py" "$top_srcdir/README.md" "$top_srcdir"/man/*.pod \
  > "$TESTDIR/docs.out" || { cat "$TESTDIR/docs.out"; exit 1; }
cat "$TESTDIR/docs.out"
# The docs do have examples to check.
test "$(grep -c ': ok: ' "$TESTDIR/docs.out")" -ge 10
