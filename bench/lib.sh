# Helpers of bench/run. Source it after scripts/lib.sh; do not run it. They
# expect WORK_DIR (server logs) and RESULTS_DIR (measured figures) to be set.

# Maximum wait for a server to accept requests.
START_TIMEOUT_SECS=60
# Load average when the run started, recorded because other work on the machine
# shows up in every figure.
LOAD_AVERAGE_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# Stops a process this script started and waits for it, killing it after 10 s.
stop_process() {
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Prints the last lines of every server log, then exits with the message.
fail() {
    local log
    for log in "$WORK_DIR"/*.log; do
        if [ -s "$log" ]; then
            echo "--- last lines of $(basename "$log")" >&2
            tail -n 20 "$log" >&2
        fi
    done
    die "$*"
}

# Prints a TCP port on 127.0.0.1 that is free now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Reads a field of the JSON document on stdin, such as `access_token` or
# `items.0.id`, and fails when it is missing.
json_field() {
    python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$1" 2>/dev/null
}

# Waits until GET /health/ready returns 200: wait_ready PID URL
wait_ready() {
    local pid="$1" url="$2" status
    for _ in $(seq 1 $((START_TIMEOUT_SECS * 20))); do
        kill -0 "$pid" 2>/dev/null || fail "velro-origin exited during start-up"
        status="$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready" || true)"
        [ "$status" = 200 ] && return 0
        sleep 0.05
    done
    fail "velro-origin did not report ready within ${START_TIMEOUT_SECS} s"
}

# Logs in and prints the access token: login URL EMAIL PASSWORD
login() {
    local url="$1" email="$2" password="$3"
    curl -sf -X POST -H 'content-type: application/json' \
        --data "{\"email\":\"$email\",\"password\":\"$password\"}" "$url/auth/login" \
        | json_field access_token || fail "POST /auth/login as $email failed or returned no access_token"
}

# Sends the same GET twice and fails unless the second is an L1 hit, so wrk
# measures the cached path: require_cached URL TOKEN
require_cached() {
    local url="$1" token="$2" headers=()
    [ -n "$token" ] && headers=(-H "Authorization: Bearer $token")
    curl -sf -o /dev/null "${headers[@]}" "$url" || fail "GET $url failed"
    local cache_status
    cache_status="$(curl -sf -o /dev/null -D - "${headers[@]}" "$url" | tr -d '\r' \
        | sed -n 's/^cache-status: //Ip')" || fail "GET $url failed"
    case "$cache_status" in
        "velro-origin; hit"*) ;;
        *) fail "GET $url is not served from the cache: cache-status is \"$cache_status\"" ;;
    esac
}

# Runs a warm-up, then the measured wrk run, and stores the JSON line of
# bench/report.lua in $RESULTS_DIR/NAME.json: measure_wrk NAME CONNECTIONS URL TOKEN
measure_wrk() {
    local name="$1" connections="$2" url="$3" token="$4"
    echo "==> $name: ${WARMUP_SECS} s warm-up, then ${DURATION_SECS} s with $connections connections"
    local common=(-t "$WRK_THREADS" -c "$connections" --timeout 5s -s bench/report.lua)
    BENCH_ACCESS_TOKEN="$token" wrk "${common[@]}" -d "${WARMUP_SECS}s" "$url" >/dev/null \
        || fail "wrk warm-up of $name failed"
    BENCH_ACCESS_TOKEN="$token" wrk "${common[@]}" -d "${DURATION_SECS}s" "$url" \
        >"$RESULTS_DIR/$name.out" || fail "wrk run of $name failed"
    sed -n 's/^wrk-json: //p' "$RESULTS_DIR/$name.out" >"$RESULTS_DIR/$name.json"
    [ -s "$RESULTS_DIR/$name.json" ] || fail "wrk printed no figures for $name"
}

# Prints a process's peak resident set size (VmHWM) in kB.
peak_rss_kb() {
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}

# Prints a Postgres URL with its database replaced: with_database URL NAME
with_database() {
    python3 -c '
import sys, urllib.parse
parts = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(parts._replace(path="/" + sys.argv[2])))' "$1" "$2"
}
