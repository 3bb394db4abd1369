#!/usr/bin/env bash
# The whole suite from a fresh Debian 12 machine, for maintainers and CI (.ci/run runs this
# with CI=true): installs every Debian package the build and the tests need, Apache's own test
# suite (Debian's apache2 source package) and cargo-deb, mounts tracefs, checks formatting,
# lints and generated files, then runs the test command of README.md ("Running the tests").
# Run it as root from the repository, with cargo on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root (apt-get, bpftrace, perf, the Debian package test): run it as root" >&2
    exit 1
fi
if ! command -v cargo >/dev/null; then
    echo "$0: cargo is not on PATH (root's PATH under sudo may lack ~/.cargo/bin:" \
        "sudo env PATH=\"\$PATH\" $0)" >&2
    exit 1
fi

echo "== installing Debian packages"
export DEBIAN_FRONTEND=noninteractive
# Apache's own test suite ships in Debian's apache2 source package: source lines for the
# suites the machine already uses (tests/apache_suite.rs).
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            > /etc/apt/sources.list.d/dtprovider-deb-src.sources
    else
        grep -hE '^deb [^ ]*debian' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
            > /etc/apt/sources.list.d/dtprovider-deb-src.list
    fi
fi
apt-get update -qq
# The perl modules are those Debian's own run of the suite installs (debian/tests/control of
# the apache2 source package), plus the websocket client its proxy_websockets tests need.
apt-get install -y -qq --no-install-recommends \
    apache2 apache2-dev libapr1-dev libaprutil1-dev \
    libclang-dev libclang-common-14-dev clang \
    bpftrace linux-perf bpfcc-tools binutils curl openssl wrk nghttp2-client strace valgrind \
    lintian dpkg-dev ruby bmake systemtap-sdt-dev \
    build-essential libwww-perl libnet-ssleay-perl libanyevent-perl libdatetime-perl \
    libhtml-parser-perl libtime-hires-perl libcrypt-ssleay-perl libhttp-dav-perl \
    libprotocol-http2-perl libfcgi-perl libpcre2-dev perl-doc \
    libanyevent-websocket-client-perl liburi-ws-perl >/dev/null

echo "== Debian's apache2 source package (Apache's test suite) in target/apache2-source"
# The newest version (security suite) can answer 404 for its files while the main suite's
# version downloads: fall back to that one. The test reports the version that ran.
if ! ls target/apache2-source/apache2-*/debian/perl-framework/Makefile.PL >/dev/null 2>&1; then
    rm -rf target/apache2-source && mkdir -p target/apache2-source
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    ( cd target/apache2-source &&
        { apt-get source -qq apache2 >/dev/null ||
            { echo "apt-get source apache2 failed; trying the version $codename lists" &&
                rm -rf ./* && apt-get source -qq "apache2/$codename" >/dev/null; }; } ) ||
        { echo "could not fetch Debian's apache2 source package" >&2; exit 1; }
fi
echo "apache2 source: $(cd target/apache2-source && ls ./*.dsc)"

# The system Apache must not run (the tests start their own, on loopback only).
if pgrep -x apache2 >/dev/null; then
    echo "stopping a system apache2 started by package installation"
    apache2ctl -k stop 2>/dev/null || pkill -x apache2 || true
fi

echo "== tracefs"
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing

echo "== tools: $(rustc --version), $(cargo --version), $(bpftrace --version), $(perf version), $(apache2 -v | head -1)"
if ! command -v cargo-deb >/dev/null; then
    cargo install cargo-deb --locked --quiet
fi

echo "== formatting and lints (the module, and the packaging and benchmark workspaces)"
for manifest in Cargo.toml packaging/Cargo.toml bench/Cargo.toml; do
    cargo fmt --all --manifest-path "$manifest" -- --check
    # --all-features: the test-only features, and the root-only suites behind `live`.
    cargo clippy --release --workspace --all-targets --all-features --manifest-path "$manifest" -- -D warnings
done
# The module's usdt probe backend: the hook code the illumos, FreeBSD and macOS builds compile
# (the tests build it into the same directory and trace it).
DTPROVIDER_BACKEND=usdt cargo clippy --release -p mod_dtprovider --all-targets \
    --target-dir target/usdt-backend -- -D warnings

echo "== generated recipes match packaging/package.toml and Cargo.lock"
cargo run --release -q --manifest-path packaging/Cargo.toml -- generate --check

echo "== tests (README.md: Running the tests), after $((SECONDS / 60)) min of set-up and lints"
started=$SECONDS
# The suite's time, said whatever its outcome (the command below is the script's last, so its
# status is the script's).
trap 'status=$?; echo "== the tests took $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s (exit status $status)"' EXIT
cargo test --release --features live \
  && cargo test --release --manifest-path packaging/Cargo.toml --features live \
  && cargo test --release --manifest-path bench/Cargo.toml
