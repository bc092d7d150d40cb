#!/bin/bash
# End-to-end: minivmm run (the host's own system in a guest, CMD's status and stdio).
# Usage: tests/e2e/runcmd.sh MINIVMM [KERNEL [GUEST_IMAGE]]
#        tests/e2e/runcmd.sh --outer MINIVMM
# The first form runs where KVM boots Linux (inside tools/with-kvm, from tests/e2e/run.sh).
# --outer runs on the machine itself: bad input is refused there before any guest, and
# where this KVM cannot boot Linux, `run` re-executes itself in the emulated host and must
# still return CMD's status and stdout/stderr.
set -u
. "$(dirname "$0")/lib.sh"
outer=
if [ "${1:-}" = --outer ]; then outer=1; shift; fi
M=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$repo/build"
# Under the repository's build/: shared read-write with the emulated host's own host.
base=$(mktemp -d "$repo/build/runcmd-e2e.XXXXXX") || exit 1
trap 'rm -rf "$base"' EXIT
cd "$base" || exit 1
TMO=${RUNCMD_TIMEOUT:-600}   # seconds per guest: a hang must not hang the suite
run() { timeout "$TMO" "$M" run "$@"; }

# bad NAME PATTERN ARGS...: status 1, exactly one stderr line matching PATTERN, no stdout.
bad() {
	local name=$1 pat=$2; shift 2
	run "$@" >"$base/out" 2>"$base/err" </dev/null
	local rc=$? lines
	lines=$(wc -l <"$base/err")
	if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -s "$base/out" ] && grep -Eq -- "$pat" "$base/err"; then
		ok "$name"
	else
		nok "$name: rc=$rc, $lines stderr lines: $(head -c 300 "$base/err")"
	fi
}

# Before any guest: the host is left as it was (no file appears in the cwd).
bad "unknown kernel" "cannot read kernel '/nonexistent'" --kernel /nonexistent -- true
bad "--rw path missing" "--rw '/nonexistent/dir': No such file or directory" --rw /nonexistent/dir -- true
bad "--ro not a directory" "--ro '/etc/passwd' is not a directory" --ro /etc/passwd -- true
bad "--env without =" "--env 'FOO' is not NAME=VALUE" --env FOO -- true
bad "--timeout junk" "--timeout 'soon' must be a whole number" --timeout soon -- true
bad "no command" "no command given" --
bad "unknown option" "unknown option '--frob'" --frob -- true
expect_eq "bad input leaves the cwd empty" "err out" "$(ls "$base" | tr '\n' ' ' | sed 's/ $//')"

if [ -n "$outer" ]; then
	# Straight from this machine: through the emulated host when its KVM cannot boot Linux.
	out=$(run -- sh -c 'echo out; echo err >&2; exit 7' 2>"$base/err"); rc=$?
	expect_eq "outer: status" 7 "$rc"
	expect_eq "outer: stdout" out "$out"
	expect_match "outer: stderr" "^err$" "$(cat "$base/err")"
	if [ -d /sys/module/kvm_pvm ] || [ ! -e /dev/kvm ]; then
		expect_match "outer: note on the emulated host" "running inside the emulated KVM host" \
			"$(cat "$base/err")"
		out=$(run -q -- true 2>&1); rc=$?
		expect_eq "outer: -q is quiet" "0 " "$rc $out"
		out=$(printf 'x\ny\n' | run -q -- sh -c 'wc -l; echo e >&2; echo o' 2>&1); rc=$?
		expect_eq "outer: stdin piped through the emulated host; stdout and stderr in order" \
			"0 2 e o" "$rc $(echo $out)"
	fi
	finish
	exit
fi

K=${2:-}
kopt=()
[ -n "$K" ] && kopt=(--kernel "$K")

# Missing modules for the kernel: a copy whose name says a version with no /lib/modules.
cp "${K:-/boot/vmlinuz-$(uname -r)}" "$base/vmlinuz-0.0.0-nomodules" 2>/dev/null &&
	bad "kernel without modules" "cannot build the guest image for kernel 0.0.0-nomodules: no modules" \
		--kernel "$base/vmlinuz-0.0.0-nomodules" -- true
rm -f "$base/vmlinuz-0.0.0-nomodules" "$base/out" "$base/err"

out=$(run "${kopt[@]}" -- true 2>"$base/err"); rc=$?
expect_eq "true: status 0, no output" "0 /" "$rc /$out$(cat "$base/err")"
run "${kopt[@]}" -- sh -c 'exit 3' </dev/null; expect_eq "exit 3" 3 "$?"
run "${kopt[@]}" -- sh -c 'kill -9 $$' </dev/null; expect_eq "killed by SIGKILL: 137" 137 "$?"

# One guest for the file system and environment: the cwd read-write, a --ro share, /usr,
# the scratch directories, uid, environment, stdout vs stderr.
mkdir "$base/ro" && echo original >"$base/ro/keep"
probe=$(cat <<'EOF'
echo data >written.txt && echo "cwd-write: ok"
{ echo x >"$RO/keep"; } 2>/dev/null && echo "ro-write: succeeded" || echo "ro-write: refused"
touch "$RO/new" 2>/dev/null && echo "ro-create: succeeded" || echo "ro-create: refused"
touch /usr/minivmm-run-test 2>/dev/null && echo "usr-write: succeeded" || echo "usr-write: refused"
echo t >/tmp/t && echo v >/var/tmp/v && echo r >/run/r && echo "scratch: $(cat /tmp/t /var/tmp/v /run/r | tr -d '\n')"
echo "pwd: $(pwd)"
echo "uid: $(id -u) gid: $(id -g)"
echo "env: FOO=$FOO HOME=$HOME PATH=$PATH"
echo "root-fs: $(awk '$2 == "/" { print $3 }' /proc/mounts | tail -n 1)"
echo "to-stderr" >&2
EOF
)
out=$(run "${kopt[@]}" --ro "$base/ro" --env FOO=bar --env RO="$base/ro" -- sh -c "$probe" \
	</dev/null 2>"$base/err"); rc=$?
marker() { printf '%s\n' "$out" | sed -n "s/^$1: //p" | head -n 1; }
expect_eq "probe: status" 0 "$rc"
expect_eq "cwd written in the guest" "ok data" "$(marker cwd-write) $(cat "$base/written.txt" 2>&1)"
expect_eq "file owned by the invoking user" "$(id -u):$(id -g)" "$(stat -c %u:%g "$base/written.txt" 2>&1)"
expect_eq "--ro: write refused" refused "$(marker ro-write)"
expect_eq "--ro: create refused" refused "$(marker ro-create)"
expect_eq "--ro: host file unchanged, nothing created" "original|" \
	"$(cat "$base/ro/keep")|$(ls "$base/ro" | grep -v '^keep$')"
expect_eq "/usr: write refused" refused "$(marker usr-write)"
expect_eq "/usr: host untouched" absent "$([ -e /usr/minivmm-run-test ] && echo present || echo absent)"
expect_eq "/tmp /var /run writable" tvr "$(marker scratch)"
expect_eq "runs in the cwd" "$base" "$(marker pwd)"
expect_eq "runs as the invoking uid/gid" "$(id -u) gid: $(id -g)" "$(marker uid)"
expect_eq "environment: --env, HOME, PATH" "FOO=bar HOME=$HOME PATH=$PATH" "$(marker env)"
expect_eq "root is the host's / over virtio-fs" virtiofs "$(marker root-fs)"
expect_eq "stderr on stderr" to-stderr "$(cat "$base/err")"

# As an unprivileged user (the emulated host runs us as root): uid, groups, and a cwd in
# /tmp, which is a tmpfs in the guest (the share is mounted over a made-up directory).
# The emulated host's fresh /dev/kvm is root-only: open it up there (a throwaway machine)
# and put it back after; on a real host, only when the kvm group may already use it.
kmode=$(stat -c %a /dev/kvm) kvmgid=$(stat -c %g /dev/kvm) nobody_ok=
if grep -qw emuhost=1 /proc/cmdline; then
	chmod 0666 /dev/kvm && nobody_ok=1
elif [ "$kvmgid" != 0 ] && [ $((0$kmode & 060)) = $((060)) ]; then
	nobody_ok=1
fi
if [ "$(id -u)" = 0 ] && [ -n "$nobody_ok" ] && command -v setpriv >/dev/null; then
	nob=$(mktemp -d /tmp/runcmd-nobody.XXXXXX) && chmod 1777 "$nob"
	out=$(cd "$nob" && HOME=$nob setpriv --reuid=65534 --regid=65534 --groups="$kvmgid" \
		"$M" run "${kopt[@]}" -- sh -c 'id -u; id -G; echo hi >mine; pwd' </dev/null 2>"$base/err")
	rc=$?
	expect_eq "as nobody: status" 0 "$rc"
	expect_eq "as nobody: id -u, groups, cwd" "65534|65534 $kvmgid|$nob" \
		"$(printf '%s\n' "$out" | tr '\n' '|' | sed 's/|$//')"
	expect_eq "as nobody: file owner" "65534 hi" "$(stat -c %u "$nob/mine" 2>&1) $(cat "$nob/mine" 2>&1)"
	[ "$rc" = 0 ] || sed 's/^/    /' "$base/err"
	rm -rf "$nob"
fi
chmod "$kmode" /dev/kvm 2>/dev/null

out=$(printf 'a\nb\n' | run "${kopt[@]}" -- wc -l); rc=$?
expect_eq "stdin piped in is read" "0 2" "$rc $out"

head -c 10485760 /dev/urandom >"$base/big"
want=$(sha256sum <"$base/big" | cut -d ' ' -f 1)
got=$(run "${kopt[@]}" -- cat big </dev/null | sha256sum | cut -d ' ' -f 1)
expect_eq "10 MiB of output intact" "$want" "$got"
rm -f "$base/big"

start=$(date +%s)
run "${kopt[@]}" --timeout 30 -- sleep 100000 </dev/null >"$base/out" 2>"$base/err"; rc=$?
took=$(( $(date +%s) - start ))
expect_eq "--timeout: status 124" 124 "$rc"
expect_match "--timeout: one line" "^minivmm: run: sleep timed out after 30 s" "$(cat "$base/err")"
expect_eq "--timeout: stopped in time" yes "$([ "$took" -lt 120 ] && echo yes || echo "no (${took}s)")"

# The reader of stdout going away ends the command as it would end a host pipeline's writer.
out=$(run "${kopt[@]}" --timeout 300 -- yes </dev/null | head -n 2 | tr '\n' ' '; echo "${PIPESTATUS[0]}")
expect_eq "stdout reader gone: SIGPIPE status" "y y 141" "$out"

run "${kopt[@]}" -- no-such-command-xyz </dev/null >"$base/out" 2>"$base/err"; rc=$?
expect_eq "command not found: 127" 127 "$rc"
expect_eq "command not found: one line" "minivmm run: no-such-command-xyz: command not found" \
	"$(cat "$base/err")"
finish
