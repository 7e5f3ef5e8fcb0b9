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
    command -v cargo >/dev/null 2>&1 || die "cargo is not installed. Install Rust 1.80 or newer with rustup (https://rustup.rs), then run this again."
}
