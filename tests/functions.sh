# Shared helpers for the integration tests; source this file.
# Each test runs a real nbdkit with the built plugin on a real file.

set -e
set -u

: "${top_builddir:=..}"
: "${top_srcdir:=..}"
: "${SANITIZER:=}"
PLUGIN="$(cd "$top_builddir" && pwd)/plugin/.libs/nbdkit-blkcache-plugin.so"
CLIENT_DIR="$(cd "$top_builddir" && pwd)/client"
CTL="$CLIENT_DIR/blkcachectl"
# Exported for the commands of a captive nbdkit (nbdkit -U - --run).
TORTURE="$CLIENT_DIR/blkcache-torture"
export TORTURE

# nbdsh and the python scripts need Debian's python3, which has the nbd module.
export PATH="/usr/bin:$PATH"

# Exit 77 (skip) when a tool is missing.
requires ()
{
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "$0: '$tool' not found, skipping"
      exit 77
    }
  done
}

# A scratch directory on the build tree's filesystem (not tmpfs), removed at exit.
TESTDIR="$(mktemp -d "$(pwd)/tmp.$(basename "$0" .sh).XXXXXX")"
export TESTDIR
SERVER_PIDS=""
SERVER_LOGS=""

cleanup ()
{
  status=$?
  for pid in $SERVER_PIDS; do
    kill "$pid" 2>/dev/null || :
  done
  for pid in $SERVER_PIDS; do
    wait_gone "$pid"
  done
  for log in $SERVER_LOGS; do
    if sanitizer_report "$log"; then
      echo "$0: sanitizer report in $log:"
      cat "$log"
      status=1
    fi
  done
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    for log in $SERVER_LOGS; do
      echo "--- $log"; tail -n 40 "$log"
    done
  fi
  rm -rf "$TESTDIR"
  exit "$status"
}
trap cleanup EXIT INT TERM

sanitizer_report ()
{
  grep -qE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer' "$1"
}

# The preload a sanitized plugin needs inside nbdkit (and only there).
sanitizer_preload ()
{
  case "$SANITIZER" in
    asan) echo "$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" ;;
    tsan) echo "$(gcc -print-file-name=libtsan.so)" ;;
    *) echo "" ;;
  esac
}

# The fault injector (tests/faultinj.c, built by make check): start_server
# preloads it into nbdkit, and into nothing else, when FAULTINJ is 1.
FAULTINJ_LIB="$(cd "$top_builddir" && pwd)/tests/.libs/faultinj.so"

# server_preload: the LD_PRELOAD of a server: the sanitizer runtime first
# (it must come first to intercept), then the fault injector if wanted,
# then $SERVER_PRELOAD, a test's own library (such as the power-cut
# recorder), when it is set.
server_preload ()
{
  p="$(sanitizer_preload)"
  if [ "${FAULTINJ:-0}" = 1 ]; then
    p="${p:+$p:}$FAULTINJ_LIB"
  fi
  if [ -n "${SERVER_PRELOAD:-}" ]; then
    p="${p:+$p:}$SERVER_PRELOAD"
  fi
  echo "$p"
}

# faultinj_setup TARGET: the servers started from now on run under the
# fault injector, failing I/O on the file TARGET only as the rules file
# $FAULTINJ_RULES says, and logging each failure to $FAULTINJ_LOG.
faultinj_setup ()
{
  [ -f "$FAULTINJ_LIB" ] || {
    echo "$0: $FAULTINJ_LIB is missing (make check builds it)"
    exit 1
  }
  FAULTINJ=1
  FAULTINJ_TARGET="$1"
  FAULTINJ_RULES="$TESTDIR/faultinj.rules"
  FAULTINJ_LOG="$TESTDIR/faultinj.log"
}

# faultinj_rules [RULE...]: replace the injector's rules, one RULE a line
# ("OP OFFSET LENGTH ERRNO [COUNT]", see faultinj.c), at once: the
# injector re-reads the file on its next call on the target and never
# sees it half written.  No RULE: no rules.
faultinj_rules ()
{
  if [ $# -gt 0 ]; then
    printf '%s\n' "$@" >"$FAULTINJ_RULES.tmp"
  else
    : >"$FAULTINJ_RULES.tmp"
  fi
  mv -f "$FAULTINJ_RULES.tmp" "$FAULTINJ_RULES"
}

# faultinj_fired REGEXP: how many failures the injector has logged whose
# line ("OP OFFSET LENGTH ERRNO") matches the extended REGEXP.
faultinj_fired ()
{
  if [ -f "$FAULTINJ_LOG" ]; then
    grep -cE -- "$1" "$FAULTINJ_LOG" || :
  else
    echo 0
  fi
}

# faultinj_python SCRIPT [ARGS...]: run a Python client script that uses
# tests/faultinj.py (the rules, the log, blkcachectl and checks of NBD
# requests).
faultinj_python ()
{
  env FAULTINJ_RULES="$FAULTINJ_RULES" FAULTINJ_LOG="$FAULTINJ_LOG" \
    BLKCACHECTL="$CTL" PYTHONPATH="$(cd "$top_srcdir" && pwd)/tests" \
    /usr/bin/python3 "$@"
}

# make_disk SIZE: a sparse file of SIZE bytes (truncate's suffixes) at
# $TESTDIR/disk, named by $disk.
make_disk ()
{
  disk="$TESTDIR/disk"
  truncate -s "$1" "$disk"
}

# wait_until SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds;
# returns 1 if it has not after SECONDS (a whole number).
wait_until ()
{
  tries=$(($1 * 10)); shift
  for _ in $(seq 1 "$tries"); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# start_server NAME [NBDKIT-OPTIONS --] PLUGIN-ARGS...
# Starts nbdkit with the plugin on the unix socket $TESTDIR/NAME.sock and sets
# $SOCK, $URI and $PID; its stderr goes to $TESTDIR/NAME.log.  The plugin is
# $SERVER_PLUGIN when it is set (a control such as nbdkit's file plugin).
# With FAULTINJ=1 (faultinj_setup), under the fault injector;
# $SERVER_PRELOAD is preloaded into nbdkit alone too (server_preload).
start_server ()
{
  name="$1"; shift
  opts=""
  for a in "$@"; do
    if [ "$a" = "--" ]; then opts="yes"; fi
  done
  nbdkit_opts=""
  if [ -n "$opts" ]; then
    while [ "$1" != "--" ]; do nbdkit_opts="$nbdkit_opts $1"; shift; done
    shift
  fi
  SOCK="$TESTDIR/$name.sock"
  URI="nbd+unix:///?socket=$SOCK"
  export URI
  log="$TESTDIR/$name.log"
  pidfile="$TESTDIR/$name.pid"
  rm -f "$pidfile" "$SOCK"
  # shellcheck disable=SC2086
  env LD_PRELOAD="$(server_preload)" ASAN_OPTIONS="detect_leaks=0" \
    TSAN_OPTIONS="${TSAN_OPTIONS:-}" \
    FAULTINJ_TARGET="${FAULTINJ_TARGET:-}" \
    FAULTINJ_RULES="${FAULTINJ_RULES:-}" FAULTINJ_LOG="${FAULTINJ_LOG:-}" \
    nbdkit -f -P "$pidfile" -U "$SOCK" $nbdkit_opts "${SERVER_PLUGIN:-$PLUGIN}" \
    "$@" 2>>"$log" &
  SERVER_LOGS="$SERVER_LOGS $log"
  for _ in $(seq 1 300); do
    if [ -s "$pidfile" ] && [ -S "$SOCK" ]; then break; fi
    if ! kill -0 $! 2>/dev/null; then
      echo "$0: nbdkit failed to start:"; cat "$log"; return 1
    fi
    sleep 0.1
  done
  [ -s "$pidfile" ] || { echo "$0: nbdkit did not start"; cat "$log"; return 1; }
  PID="$(cat "$pidfile")"
  SERVER_PIDS="$SERVER_PIDS $PID"
}

# start_control_server NAME [NBDKIT-OPTIONS --] PLUGIN-ARGS...: start_server
# with control=$ctl added, the control socket $TESTDIR/ctl.
start_control_server ()
{
  ctl="$TESTDIR/ctl"
  start_server "$@" control="$ctl"
}

# start_held_flush_server NAME US: a control server on $disk (make_disk)
# with one dirty block, whose writeback race_window_us holds open US
# microseconds, so a flush keeps the worker busy that long; no background
# writeback, so only the control socket's jobs use the worker.
start_held_flush_server ()
{
  start_control_server "$1" -D blkcache.race_window_us="$2" -- "$disk" \
    dirty-expire=0 dirty-background=100 dirty-limit=100
  nbdsh -u "$URI" -c 'h.pwrite(b"\x42" * 65536, 0)'
}

# stat_of NAME: the value of one counter in the stats of the control
# socket $ctl.
stat_of ()
{
  "$CTL" -s "$ctl" stats | awk -v n="$1" '$1 == n { print $2 }'
}

# torture_start OUT [OPTIONS...]: blkcache-torture with OPTIONS against
# $URI in the background, without its progress line, its output in OUT;
# sets $torture_pid.
torture_start ()
{
  torture_out="$1"; shift
  "$TORTURE" --no-progress "$@" "$URI" >"$torture_out" 2>&1 &
  torture_pid=$!
}

# torture_wait WANT: wait for the run torture_start began and check it as
# torture_exited does.
torture_wait ()
{
  status=0
  wait "$torture_pid" || status=$?
  torture_exited "$1" "$status" "$torture_out"
}

# run_torture WANT OUT [OPTIONS...]: torture_start, then torture_wait.
run_torture ()
{
  want="$1"; shift
  torture_start "$@"
  torture_wait "$want"
}

# torture_exited WANT STATUS OUT: print blkcache-torture's output OUT and
# fail the test unless it exited with STATUS WANT (torture.h: 0 no stale
# read, 1 a failed check, 3 the server dropped a connection).
torture_exited ()
{
  cat "$3"
  if [ "$2" -ne "$1" ]; then
    echo "$0: blkcache-torture exited with $2, expected $1"
    exit 1
  fi
}

# torture_clean OUT: blkcache-torture's summary in OUT counts no stale read
# and no block status reply that claimed zeroes wrongly.
torture_clean ()
{
  grep -q '^stale reads: 0 ' "$1" &&
    grep -q '^block status replies claiming zeroes wrongly: 0$' "$1"
}

# torture_server NAME [NBDKIT-OPTIONS --] PLUGIN-ARGS...: start the plugin
# as start_server does, run blkcache-torture against it for
# $TORTURE_SECONDS (default 3), require a clean run, and stop the server.
torture_server ()
{
  name="$1"
  start_server "$@"
  echo "--- $name: $*"
  run_torture 0 "$TESTDIR/$name.out" --seconds "${TORTURE_SECONDS:-3}"
  torture_clean "$TESTDIR/$name.out"
  stop_server "$PID"
}

# wait_gone PID: wait for a process to exit; SIGKILL it after a minute.
# (nbdkit with a sanitizer runtime preloaded can hang in libp11-kit's exit
# handler, after everything of ours has run.)
wait_gone ()
{
  wait_until 60 gone "$1" && return 0
  echo "$0: process $1 did not exit; killing it"
  kill -9 "$1" 2>/dev/null || :
}

# stop_server PID: a clean shutdown, waiting for the process to go.
stop_server ()
{
  kill "$1"
  wait_gone "$1"
}

# gone PID: whether process PID has exited.
gone ()
{
  ! kill -0 "$1" 2>/dev/null
}

# kill_server PID: SIGKILL, as a crash would, waiting for the process to go.
kill_server ()
{
  kill -9 "$1"
  wait_gone "$1"
}

# run_nbdkit ARGS...: a one-shot nbdkit (such as --dump-plugin) with the
# sanitizer runtime the plugin needs.
run_nbdkit ()
{
  env LD_PRELOAD="$(sanitizer_preload)" ASAN_OPTIONS="detect_leaks=0" \
    timeout -k 5 30 nbdkit "$@"
}

# nbdkit_fails PLUGIN-ARGS... : the server must refuse to start; its
# message is left in $TESTDIR/fail.log.
nbdkit_fails ()
{
  if run_nbdkit -f -U "$TESTDIR/fail.sock" "$PLUGIN" "$@" --run true \
       >"$TESTDIR/fail.log" 2>&1; then
    echo "$0: nbdkit started with: $*"
    return 1
  fi
  return 0
}

# unit_command UNIT KEY: the command line of KEY (ExecStart, ExecStopPost)
# in the built systemd unit UNIT, as sh(1) can eval it in this test:
# instance %i is vm1; /run/blkcache/ is $TESTDIR/; node_exporter's
# textfile directory is $TESTDIR/textfile; the installed plugin and
# blkcachectl are the built ones; and ${VAR} (one word to systemd) is
# quoted, while $VAR stays unquoted (split at spaces by both).
unit_command ()
{
  sed -n "s/^$2=//p" "$top_builddir/systemd/$1" | sed \
    -e "s|%i|vm1|g" \
    -e "s|/run/blkcache/|$TESTDIR/|g" \
    -e "s|/var/lib/prometheus/node-exporter|$TESTDIR/textfile|g" \
    -e "s|[^ ']*/blkcachectl |$CTL |g" \
    -e "s|[^ ]*/nbdkit-blkcache-plugin.so|$PLUGIN|g" \
    -e 's|\${\([A-Z_]*\)}|"${\1}"|g'
}

# load_env_file FILE: export its VAR=VALUE lines as systemd's
# EnvironmentFile= reads them (the value is the rest of the line).
load_env_file ()
{
  while IFS= read -r line; do
    case "$line" in
      [A-Za-z_]*=*) export "${line%%=*}=${line#*=}" ;;
    esac
  done < "$1"
}
