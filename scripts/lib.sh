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
    # The lock timeout lets an install wait for another apt run on the machine
    # to finish instead of failing at once.
    apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

# Installs Chromium and chromedriver (Debian packages chromium and
# chromium-driver) when either is missing, for the dashboard's browser test.
# Returns non-zero when they are missing afterwards.
ensure_browser() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        return 0
    fi
    install_packages chromium chromium-driver || return 1
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}

# Starts the machine's PostgreSQL cluster, installing the Debian package first
# when it is missing. Returns non-zero when no server accepts connections on
# 127.0.0.1:5432 afterwards.
ensure_postgres() {
    local installed=0
    if ! command -v pg_isready >/dev/null 2>&1; then
        install_packages postgresql || return 1
        installed=1
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "==> starting PostgreSQL"
        for version in /etc/postgresql/*/; do
            # The tests connect as postgres without a password, as the
            # machines' own servers allow. Debian's package requires one on
            # 127.0.0.1, so a cluster installed just now trusts loopback first.
            if [ "$installed" = 1 ] && [ -f "$version/main/pg_hba.conf" ]; then
                sed -i '1i host all all 127.0.0.1/32 trust' "$version/main/pg_hba.conf"
                pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main reload 2>/dev/null || true
            fi
            pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
        done
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && return 0
            sleep 1
        done
    fi
    return 1
}

# Returns zero when a Redis server responds to PING on 127.0.0.1:$1, using bash's
# /dev/tcp so that redis-cli is not needed.
redis_responds() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 || reply=""
    exec 3>&-
    [ "${reply%$'\r'}" = "+PONG" ]
}

# Starts a Redis server on 127.0.0.1:6379 when none responds there, installing the
# Debian package first when redis-server is missing. The fault tests also need
# redis-server, to start throwaway servers of their own. Returns non-zero when no
# server responds afterwards.
ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        install_packages redis-server || return 1
    fi
    redis_responds 6379 && return 0
    echo "==> starting Redis"
    # Like the machine's own service: loopback only, and nothing kept on disk.
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/velro-redis.log" >/dev/null || return 1
    for _ in $(seq 1 30); do
        redis_responds 6379 && return 0
        sleep 0.2
    done
    return 1
}

# Builds velro-shared for wasm32-unknown-unknown, the edge worker's target, so the
# promise that it compiles there is checked. rustup's prebuilt target is used when
# rustup can add it. Otherwise Debian's rustc-web, rust-web-src and lld-22 build
# the standard library from source, which needs RUSTC_BOOTSTRAP for -Zbuild-std.
build_shared_wasm() {
    if command -v rustup >/dev/null 2>&1 \
        && { rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
            || rustup target add wasm32-unknown-unknown >/dev/null 2>&1; }; then
        cargo build --locked -p velro-shared --target wasm32-unknown-unknown
        return
    fi
    if ! [ -d /usr/lib/rustlib/src/rust/library ] || ! [ -x /usr/bin/rust-lld ]; then
        install_packages rustc-web cargo-web rust-web-src lld-22 \
            || die "cannot add the wasm32-unknown-unknown target: rustup failed, and Debian's rustc-web packages cannot be installed"
    fi
    # Debian's cargo and rustc come first, so that build-std uses their matching library sources.
    PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --locked -p velro-shared \
        --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort --target-dir target/wasm32-build-std
}
