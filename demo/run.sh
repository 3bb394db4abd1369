#!/usr/bin/env bash
# demo/run.sh: mod_dtprovider in one command.
#
#   sudo ./demo/run.sh          # on a fresh Debian/Ubuntu machine
#   sudo ./demo/run.sh --ci     # non-interactive: never installs packages, fails instead
#
# What it does, in under two minutes:
#   1. installs what is missing (apt-get: apache2 apache2-dev bpftrace libclang-dev
#      libclang-common-14-dev curl);
#   2. builds the module (cargo build --release), unless DTPROVIDER_MODULE names a
#      built mod_dtprovider.so to use instead;
#   3. starts a private Apache on 127.0.0.1 (its own ServerRoot, config and pid file in
#      a temporary directory; the system's apache2 service is never touched) that loads
#      the module;
#   4. runs examples/http-requests.bt (probe httpd:request__done), showing a live line per
#      request while it drives a short, varied burst of traffic: several URLs, 200/404/301
#      and slow responses, keep-alive, HTTP/2 cleartext;
#   5. runs examples/http-requests-bylatency.bt over a second burst and prints the latency
#      histogram;
#   6. stops everything it started (also on Ctrl-C or an error) and removes its files.
#
# Tracing needs root, bpftrace and tracefs; without them the demo stops with a message
# that says which is missing, and exits 1.
set -euo pipefail

CI_MODE=0
for a in "$@"; do
	case "$a" in
	--ci) CI_MODE=1 ;;
	-h | --help)
		sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "demo: unknown argument $a (try --help)" >&2
		exit 2
		;;
	esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEB_MODULE=/usr/lib/apache2/modules/mod_dtprovider.so
MODULES=/usr/lib/apache2/modules

say() { printf '\n==> %s\n' "$*"; }
die() {
	printf '\ndemo: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------------------
# Everything this script starts is recorded here and stopped by cleanup().
WORK=""
APACHE_PID=""
BPF_PID=""
TAIL_PID=""

stop_pid() { # pid [signal]: signal it, wait up to 10 s, then SIGKILL
	local pid=$1 sig=${2:-TERM} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$BPF_PID" INT
	stop_pid "$TAIL_PID"
	if [ -n "$APACHE_PID" ]; then
		stop_pid "$APACHE_PID"
		echo "==> stopped the demo's Apache (pid $APACHE_PID)"
	fi
	[ -n "$WORK" ] && rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# 0. Can we trace at all?
[ "$(uname -s)" = Linux ] || die "this demo is for Linux (bpftrace); on illumos, FreeBSD or macOS use the .d examples with dtrace"
[ "$(id -u)" -eq 0 ] || die "tracing needs root: run it as  sudo $0"

# 1. Packages.
missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in apache2 apache2-dev bpftrace libclang-dev libclang-common-14-dev curl; do
	if command -v dpkg-query >/dev/null; then
		have_pkg "$p" || missing+=("$p")
	fi
done
if [ -n "${DTPROVIDER_MODULE:-}" ]; then
	# A prebuilt module: the build dependencies are not needed.
	keep=()
	for p in "${missing[@]}"; do
		case "$p" in apache2-dev | libclang-dev | libclang-common-14-dev) ;; *) keep+=("$p") ;; esac
	done
	missing=("${keep[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$CI_MODE" = 1 ]; then
		die "missing packages: ${missing[*]} (--ci never installs; apt-get install ${missing[*]})"
	fi
	command -v apt-get >/dev/null || die "missing packages: ${missing[*]}, and no apt-get to install them"
	say "Installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
command -v bpftrace >/dev/null || die "bpftrace is not installed (apt-get install bpftrace)"
command -v apache2 >/dev/null || PATH=$PATH:/usr/sbin
command -v apache2 >/dev/null || die "apache2 is not installed (apt-get install apache2)"
command -v curl >/dev/null || die "curl is not installed (apt-get install curl)"

# tracefs: bpftrace attaches USDT probes through uprobe_events.
if [ ! -e /sys/kernel/tracing/uprobe_events ]; then
	mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
[ -e /sys/kernel/tracing/uprobe_events ] ||
	die "no tracefs with uprobes at /sys/kernel/tracing (mount -t tracefs nodev /sys/kernel/tracing; the kernel needs CONFIG_UPROBE_EVENTS)"

# 2. The module.
if [ -n "${DTPROVIDER_MODULE:-}" ]; then
	MODULE_SRC=$DTPROVIDER_MODULE
	[ -f "$MODULE_SRC" ] || die "DTPROVIDER_MODULE=$MODULE_SRC does not exist"
	say "Using the module $MODULE_SRC"
else
	say "Building the module (cargo build --release)"
	user_home=$HOME
	if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
		user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
	fi
	cargo=$(command -v cargo || true)
	[ -n "$cargo" ] || [ ! -x "$user_home/.cargo/bin/cargo" ] || cargo=$user_home/.cargo/bin/cargo
	[ -n "$cargo" ] || die "cargo is not installed. Install Rust (as your user, not root) with
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then run this demo again."
	if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
		# Build as the user who ran sudo, so target/ stays theirs.
		(cd "$REPO" && sudo -u "$SUDO_USER" env "PATH=$(dirname "$cargo"):$PATH" "$cargo" build --release)
	else
		(cd "$REPO" && "$cargo" build --release)
	fi
	MODULE_SRC=$REPO/target/release/libmod_dtprovider.so
fi

# 3. A private Apache.
WORK=$(mktemp -d /tmp/dtprovider-demo.XXXXXX)
chmod 755 "$WORK"
port=""
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 20000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[ -n "$port" ] || die "no free port on 127.0.0.1"
mkdir -p "$WORK/htdocs/errors" "$WORK/htdocs/docs"
page='<html><body>mod_dtprovider demo</body></html>'
echo "$page" >"$WORK/htdocs/index.html"
echo "$page" >"$WORK/htdocs/about.html"
echo "$page" >"$WORK/htdocs/docs/index.html"
head -c 20000 /dev/zero | tr '\0' 'x' >"$WORK/htdocs/big.txt"
echo "not here" >"$WORK/htdocs/errors/404.html"
cat >"$WORK/htdocs/slow.cgi" <<'EOF'
#!/bin/sh
ms=${QUERY_STRING:-300}
[ -n "$CONTENT_LENGTH" ] && head -c "$CONTENT_LENGTH" >/dev/null
sleep "$(echo "$ms" | awk '{printf "%.3f", $1/1000}')"
printf 'Content-Type: text/plain\r\n\r\nslept %s ms\n' "$ms"
EOF
chmod -R a+rX "$WORK/htdocs"
chmod 755 "$WORK/htdocs/slow.cgi"
cp "$MODULE_SRC" "$WORK/mod_dtprovider.so"
chmod 755 "$WORK/mod_dtprovider.so"
MODULE=$WORK/mod_dtprovider.so
# The configuration: testkit/httpd.conf.in, the template the tests' and the benchmark's
# private Apaches are written from, filled in here with sed, plus the demo's own lines.
run_as='# (no www-data user: Apache keeps this user)'
id www-data >/dev/null 2>&1 && run_as='User www-data\nGroup www-data'
sed -e "s|^@LISTEN@$|Listen 127.0.0.1:$port|" \
	-e "s|^@USER@$|$run_as|" \
	-e "s|^@MPM_SIZING@$|StartServers 1\nThreadsPerChild 25\nMaxRequestWorkers 50|" \
	-e "s|@MPM@|event|g" -e "s|@MODULES@|$MODULES|g" -e "s|@ROOT@|$WORK|g" \
	-e '/^@EXTRA@$/d' "$REPO/testkit/httpd.conf.in" >"$WORK/httpd.conf"
cat >>"$WORK/httpd.conf" <<EOF
LoadModule alias_module $MODULES/mod_alias.so
LoadModule cgid_module $MODULES/mod_cgid.so
ScriptSock $WORK/cgid.sock
LoadModule http2_module $MODULES/mod_http2.so
Protocols h2c http/1.1
LoadModule dtprovider_module $MODULE
<Directory $WORK/htdocs>
  Options +ExecCGI
  AddHandler cgi-script .cgi
</Directory>
ErrorDocument 404 /errors/404.html
Redirect 301 /old-page /about.html
LogFormat "%h %l %u %t \"%r\" %>s %b %D" timed
CustomLog $WORK/access.log timed
EOF
! grep -q '@[A-Z_]*@' "$WORK/httpd.conf" || die "testkit/httpd.conf.in has a placeholder the demo does not fill"
say "Starting a private Apache on 127.0.0.1:$port (config $WORK/httpd.conf)"
apache2 -f "$WORK/httpd.conf" -k start || die "apache2 did not start: $(cat "$WORK/error.log" 2>/dev/null)"
for _ in $(seq 100); do
	[ -s "$WORK/httpd.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	sleep 0.1
done
APACHE_PID=$(cat "$WORK/httpd.pid" 2>/dev/null || true)
[ -n "$APACHE_PID" ] || die "apache2 did not come up: $(cat "$WORK/error.log" 2>/dev/null)"
echo "    pid $APACHE_PID, module $MODULE"

# ---------------------------------------------------------------------------------------
# Tracing helpers. The examples name the Debian package's module path; point them at the
# demo's copy, as the examples' headers tell users to do for a from-source build.
start_trace() { # example.bt -> runs it in the background, output shown live
	local script=$1 out=$WORK/$(basename "$1").out i
	sed "s|$DEB_MODULE|$MODULE|g" "$REPO/examples/$script" >"$WORK/$script"
	: >"$out"
	bpftrace "$WORK/$script" >"$out" 2>"$out.err" &
	BPF_PID=$!
	for i in $(seq 300); do
		grep -q 'Tracing' "$out" && break
		kill -0 "$BPF_PID" 2>/dev/null || die "bpftrace failed: $(grep -v RLIMIT_MEMLOCK "$out.err")"
		sleep 0.1
	done
	grep -q 'Tracing' "$out" || die "bpftrace did not attach in 30 s: $(cat "$out.err")"
	tail -n +1 -f "$out" &
	TAIL_PID=$!
}

stop_trace() { # SIGINT until bpftrace exits (a signal right after attach can be lost)
	local i
	sleep 0.5
	for i in $(seq 100); do
		kill -0 "$BPF_PID" 2>/dev/null || break
		kill -INT "$BPF_PID" 2>/dev/null || true
		sleep 0.3
	done
	wait "$BPF_PID" 2>/dev/null || true
	BPF_PID=""
	sleep 0.3
	stop_pid "$TAIL_PID"
	wait "$TAIL_PID" 2>/dev/null || true
	TAIL_PID=""
}

U="http://127.0.0.1:$port"
get() { curl -s -o /dev/null "$@" || true; }

burst() {
	# keep-alive: several URLs on one connection
	get "$U/" -o /dev/null "$U/about.html" -o /dev/null "$U/docs/" -o /dev/null "$U/big.txt"
	sleep 0.2
	get "$U/missing.html?from=demo"            # 404 (ErrorDocument: internal redirect)
	get "$U/old-page"                          # 301
	get "$U/about.html?lang=en&ref=demo"       # query string
	get -X POST -d 'name=demo' "$U/slow.cgi?50" # POST to a CGI
	get "$U/slow.cgi?400"                      # a slow response
	sleep 0.2
	get --http2-prior-knowledge "$U/"           # HTTP/2 cleartext
	get --http2-prior-knowledge "$U/about.html?h2=1"
	get "$U/docs/index.html" -o /dev/null "$U/nope" -o /dev/null "$U/big.txt"
}

# 4. Live lines.
say "examples/http-requests.bt: one line per request, while we send a burst of traffic"
start_trace http-requests.bt
burst
sleep 0.5
stop_trace

# 5. Latency histogram.
say "examples/http-requests-bylatency.bt: latency histogram (us) of a second burst"
start_trace http-requests-bylatency.bt
burst
for _ in 1 2 3; do
	urls=()
	for i in $(seq 10); do urls+=("$U/about.html?n=$i" -o /dev/null); done
	get "${urls[@]}"
done
stop_trace

say "Done. Next: the other examples in examples/ (README.md lists them), or your own bpftrace on the
    probes httpd:request__start and httpd:request__done (bpftrace -l 'usdt:$DEB_MODULE:*' lists
    them once the Debian package is installed); stopping what the demo started."
