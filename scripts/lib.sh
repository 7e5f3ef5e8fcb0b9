# Helpers shared by scripts/dev and scripts/test. Source it; do not run it.

# Prints a message to stderr and exits.
die() {
    echo "error: $*" >&2
    exit 1
}

# Makes sure a Rust toolchain with cargo is on PATH, loading rustup's environment
# when it is installed but not yet on PATH.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is not installed. Install Rust 1.89 or newer with rustup (https://rustup.rs), then run this again."
}

# Installs Debian packages when apt-get is available and this is root; returns
# non-zero when it cannot.
install_packages() {
    command -v apt-get >/dev/null 2>&1 || return 1
    [ "$(id -u)" = "0" ] || return 1
    echo "==> installing $*"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Starts the machine's PostgreSQL cluster, installing the Debian package first
# when it is missing. Returns non-zero when no server accepts connections on
# 127.0.0.1:5432 afterwards.
ensure_postgres() {
    if ! command -v pg_isready >/dev/null 2>&1; then
        install_packages postgresql || return 1
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "==> starting PostgreSQL"
        for version in /etc/postgresql/*/; do
            pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
        done
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && return 0
            sleep 1
        done
    fi
    return 1
}

# Returns zero when a Redis server answers PING on 127.0.0.1:$1, using bash's
# /dev/tcp so that redis-cli is not needed.
redis_answers() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 || reply=""
    exec 3>&-
    [ "${reply%$'\r'}" = "+PONG" ]
}

# Starts a Redis server on 127.0.0.1:6379 when none answers there, installing the
# Debian package first when redis-server is missing. The fault tests also need
# redis-server, to start throwaway servers of their own. Returns non-zero when no
# server answers afterwards.
ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        install_packages redis-server || return 1
    fi
    redis_answers 6379 && return 0
    echo "==> starting Redis"
    # Like the machine's own service: loopback only, and nothing kept on disk.
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/velro-redis.log" >/dev/null || return 1
    for _ in $(seq 1 30); do
        redis_answers 6379 && return 0
        sleep 0.2
    done
    return 1
}
