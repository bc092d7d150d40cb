#!/bin/bash
# Self-test of tools/emuhost: boots the emulated KVM host a few times and
# checks what a caller relies on (exit status, argument quoting, environment,
# shared directories, real KVM inside, byte-exact output, stderr kept apart,
# the "host stopped" error path).  Prints "ok - ..." / "not ok - ..." lines,
# then "N passed, M failed"; exits non-zero if any failed.
# Boots are expensive (seconds each, all emulated), so one boot runs most
# checks, with a script written into a scratch directory.
# Usage: tests/e2e/emuhost.sh   (from anywhere; no arguments)
set -u
cd "$(dirname "$0")/../.." || exit 2
. tests/e2e/lib.sh
repo=$PWD
emuhost=$repo/tools/emuhost
now_ms() { echo $(($(date +%s%N) / 1000000)); }

mkdir -p build
work=$(mktemp -d "$repo/build/emuhost-test.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# --- errors found before booting: one line on stderr, status 2 ---
"$emuhost" >/dev/null 2>"$work/err"; rc=$?
expect_eq "no COMMAND: status 2" 2 "$rc"
expect_eq "no COMMAND: one line on stderr" 1 "$(wc -l <"$work/err")"
"$emuhost" --bogus -- true >/dev/null 2>"$work/err"; rc=$?
expect_eq "unknown option: status 2" 2 "$rc"

# --- boot 1: the simplest command, timed ---
# Run from the repository's root (cwd == repo, the case under make): a file written
# through a relative path must reach the real host.
rel=${work#"$repo"/}
t0=$(now_ms)
"$emuhost" -- sh -c "echo from-repo-root >$rel/root.out" </dev/null >"$work/out" 2>"$work/err"; rc=$?
t1=$(now_ms)
expect_eq "a simple command exits 0" 0 "$rc"
expect_eq "a simple command prints nothing" "" "$(cat "$work/out" "$work/err")"
expect_eq "run from the repository root: its files are shared read-write" \
	from-repo-root "$(cat "$work/root.out" 2>/dev/null)"
echo "# a simple command took $(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100)) s"

# --- boot 2: most checks at once, from a scratch dir inside the repo ---
head -c 204800 /dev/urandom >"$work/blob"
cat >"$work/inner.sh" <<'EOF'
# Runs inside the emulated host.  Results go to files in the current
# directory (which must reach the real host); stdout gets only the blob.
printf '%s|' "$@" >args.out
printf '%s\n' "$FOO" >env.out
echo "written inside" >written.out
# /dev/kvm must be real KVM: KVM_GET_API_VERSION (0xAE00) returns 12 and
# KVM_CREATE_VM (0xAE01) returns a VM fd.
{ test -c /dev/kvm && grep -qw svm /proc/cpuinfo &&
  perl -e 'open(my $k, "+<", "/dev/kvm") or exit 1;
           exit 1 unless ioctl($k, 0xAE00, 0) == 12;
           exit(defined(ioctl($k, 0xAE01, 0)) ? 0 : 1)' &&
  echo yes || echo no; } >kvm.out
echo "to stderr" >&2
cat blob
exit 3
EOF
cd "$work" || exit 2
# shellcheck disable=SC2016  # '$x' must arrive unexpanded
FOO=bar "$emuhost" -- sh ./inner.sh 'a b' "it's" '$x' </dev/null >"$work/stdout" 2>"$work/stderr"; rc=$?
cd "$repo" || exit 2
expect_eq "exit status 3 comes back" 3 "$rc"
expect_eq "arguments with spaces and quotes arrive intact" \
	"a b|it's|\$x|" "$(cat "$work/args.out" 2>/dev/null)"
expect_eq "environment variable FOO=bar passes through" \
	bar "$(cat "$work/env.out" 2>/dev/null)"
expect_eq "a file written in the current directory appears on the host" \
	"written inside" "$(cat "$work/written.out" 2>/dev/null)"
expect_eq "/dev/kvm inside is real KVM (API version 12, creates a VM, svm in cpuinfo)" \
	yes "$(cat "$work/kvm.out" 2>/dev/null)"
expect_eq "200 KiB of binary output arrive intact on stdout (sha256)" \
	"$(sha256sum <"$work/blob")" "$(sha256sum <"$work/stdout")"
expect_eq "stderr arrives on stderr, and only there" "to stderr" "$(cat "$work/stderr")"

# --- boot 3: the emulated host dies before COMMAND finishes ---
# sysrq 'o' powers off at once: no status is ever written.  Guarded by a
# word only the emulated host's kernel command line has, so that a broken
# emuhost running the command here could never power off this machine.
"$emuhost" -- sh -c 'grep -qw emuhost=1 /proc/cmdline || exit 99
	echo o >/proc/sysrq-trigger; sleep 60' </dev/null >/dev/null 2>"$work/err"; rc=$?
expect_eq "host stopping early: status 125" 125 "$rc"
# The kernel's own last words (its console is stderr) may come first.
expect_eq "host stopping early: the one-line explanation" \
	"emuhost: the emulated host stopped before COMMAND finished" "$(grep -v '^\[ *[0-9.]*\] ' "$work/err")"

finish
