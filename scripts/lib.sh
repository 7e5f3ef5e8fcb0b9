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

# Starts the machine's PostgreSQL cluster when it is installed but not running.
# Returns non-zero when no server accepts connections on 127.0.0.1:5432 afterwards.
ensure_postgres() {
    command -v pg_isready >/dev/null 2>&1 || return 1
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
