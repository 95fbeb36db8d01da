"""Helpers for the Python side of the tests that run nbdkit under the
fault injector (faultinj.c): replace its rules, count the failures it
logged, read the disk file, and check NBD requests, noting every failed
check and going on, so that one run shows every rule the server breaks.

Run the scripts with faultinj_python (functions.sh), which passes
FAULTINJ_RULES and FAULTINJ_LOG in the environment."""

import errno
import os
import re
import subprocess
import sys

import nbd

RULES = os.environ["FAULTINJ_RULES"]
LOG = os.environ["FAULTINJ_LOG"]
CTL = os.environ["BLKCACHECTL"]

failures = []


def set_rules(*lines):
    """Replace the rules with LINES at once (write, then rename), as the
    injector needs: it re-reads the file when its inode changes."""
    tmp = RULES + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(tmp, RULES)


def log_lines():
    """The failures logged so far, one "OP OFFSET LENGTH ERRNO" each."""
    try:
        with open(LOG) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def log_mark():
    """Where the log ends now, for fired (since=...)."""
    return len(log_lines())


def fired(regexp, since=0):
    """How many failures logged after the first SINCE match REGEXP."""
    return sum(1 for line in log_lines()[since:] if re.search(regexp, line))


def on_disk(path, offset, count):
    """COUNT bytes of the file PATH at OFFSET, read past every cache."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(count)


def control(sock, *command):
    """Run blkcachectl -s SOCK COMMAND...; returns (exit status, output)."""
    p = subprocess.run([CTL, "-s", sock] + list(command),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    return p.returncode, p.stdout


def stat_of(sock, name):
    """The counter NAME in the stats of the control socket SOCK, or None
    when the server has no such counter."""
    status, out = control(sock, "stats")
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == name:
            return int(words[1])
    return None


def check(ok, what):
    """Note the check WHAT, failed unless OK; returns OK."""
    print(("ok      " if ok else "FAILED  ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def request_fails(err, what, fn, *args):
    """The request FN(*ARGS) must fail with errno ERR (None: any errno)."""
    try:
        fn(*args)
    except nbd.Error as e:
        # e.errno is the errno's name in this libnbd; e.errnum its number.
        if err is None or e.errnum == err:
            return check(True, "%s fails (%s)" % (what, e.string))
        return check(False, "%s fails with %s, not %s" %
                     (what, errno.errorcode.get(e.errnum, e.errnum),
                      errno.errorcode[err]))
    return check(False, "%s fails, but it succeeded" % what)


def request_succeeds(what, fn, *args):
    """The request FN(*ARGS) must succeed; returns its result or None."""
    try:
        r = fn(*args)
    except nbd.Error as e:
        check(False, "%s succeeds, but it failed: %s" % (what, e.string))
        return None
    check(True, "%s succeeds" % what)
    return r


def finish():
    """Exit 1 if a check failed, listing them, else 0."""
    if failures:
        print("%d checks failed:" % len(failures))
        for f in failures:
            print("  " + f)
    sys.exit(1 if failures else 0)
