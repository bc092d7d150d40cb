#!/bin/bash
# End-to-end: the sandbox (--sandbox on, the default).  A guest with two vCPUs runs the
# virtio-fs workload (tests/e2e/fsprobe: create, read, rename, unlink, locks, xattrs, mmap)
# on a share; while it runs, every thread of minivmm must have a seccomp filter (Seccomp: 2)
# and the process must live in its own mount namespace whose root holds only the share.
# --sandbox none: one warning line, no filter on any thread.
# Usage: tests/e2e/sandbox.sh MINIVMM KERNEL GUEST_IMAGE
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1") K=$2 G=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$repo/build"
base=$(mktemp -d "$repo/build/sandbox-e2e.XXXXXX") || exit 1
img='' pid=''
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	if [ -n "$img" ]; then
		umount "$base/ext4" 2>/dev/null
		rm -f "$img"
	fi
	rm -rf "$base"
}
trap cleanup EXIT

# As in fs.sh: under the emulated host build/ is 9p, whose quirks would fail fsprobe
# checks for 9p's reasons; share an ext4 image there.
root=$base
if [ "$(df --output=fstype "$base" | tail -n 1)" = 9p ]; then
	modprobe -q loop 2>/dev/null; modprobe -q ext4 2>/dev/null
	img=$(mktemp "${TMPDIR:-/tmp}/sandbox-e2e.XXXXXX.img") &&
	truncate -s 256M "$img" && mkfs.ext4 -q -F "$img" && mkdir "$base/ext4" &&
	mount -o loop "$img" "$base/ext4" && root=$base/ext4
fi
share=$root/share
mkdir -p "$share"
if gcc -static -O2 -Wall -Wextra -Werror -o "$share/fsprobe" "$here/fsprobe.c" 2>"$base/gcc"; then
	ok "fsprobe builds"
else
	nok "fsprobe builds: $(head -c 300 "$base/gcc")"
	finish; exit
fi

# The guest signals "ready" through the share and waits for the host's "done" (cache=auto:
# the guest sees the host's file), so the host inspects a machine that is fully up.
guest_wait='touch /mnt/t/ready; i=0; while [ ! -e /mnt/t/done ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done'
# Wait for $share/ready while minivmm runs under timeout ($pid); then vm is minivmm's pid.
wait_ready() {
	for _ in $(seq 1 1500); do
		vm=$(pgrep -P "$pid" | head -n 1)
		[ -e "$share/ready" ] && [ -n "$vm" ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}
# "N threads, seccomp modes: M" for process $pid.
seccomp_modes() {
	local n=0 modes=''
	for s in /proc/"$vm"/task/*/status; do
		m=$(awk '/^Seccomp:/{print $2}' "$s" 2>/dev/null) || continue
		[ -n "$m" ] || continue
		n=$((n + 1)) modes="$modes $m"
	done
	echo "$n threads, seccomp modes:$(echo "$modes" | tr ' ' '\n' | sort -u | tr '\n' ' ')"
}

# --- sandbox on (the default) ---------------------------------------------------------
rm -f "$share/ready" "$share/done"
timeout 900 "$M" --kernel "$K" --initrd "$G" --cpus 2 --share "tag=t,path=$share,cache=auto" \
	-- sh -c "/mnt/t/fsprobe /mnt/t/work > /mnt/t/probe.out 2>&1; echo fsprobe-rc \$?; $guest_wait" \
	>"$base/out" 2>"$base/err" </dev/null &
pid=$!
if wait_ready; then
	ok "sandboxed guest came up and ran the workload"
	modes=$(seccomp_modes)
	expect_match "every thread has a seccomp filter" '^[0-9]+ threads, seccomp modes: 2 $' "$modes"
	nthreads=${modes%% *}
	# main, spawner, 2 vCPUs, serial input, virtio-fs pool (4) and queue workers (2), rng.
	[ "$nthreads" -ge 10 ] && ok "all threads counted ($nthreads)" ||
		nok "all threads counted: only $nthreads"
	names=$(cat /proc/"$vm"/task/*/comm | sed 's/[0-9]*$//' | sort -u | tr '\n' ' ')
	expect_match "threads are named by role" 'spawner .*vcpu .*vfs-pool .*virtq' "$names"
	host_ns=$(readlink /proc/self/ns/mnt) vm_ns=$(readlink /proc/"$vm"/ns/mnt)
	[ -n "$vm_ns" ] && [ "$vm_ns" != "$host_ns" ] && ok "own mount namespace" ||
		nok "own mount namespace: [$vm_ns] vs host [$host_ns]"
	expect_eq "its root holds only the share and /proc/self/fd" "proc s0" \
		"$(ls /proc/"$vm"/root/ 2>&1 | tr '\n' ' ' | sed 's/ $//')"
	caps=$(awk '/^CapEff:/{print $2}' /proc/"$vm"/status)
	expect_eq "main thread keeps no capabilities" 0000000000000000 "$caps"
	nofile=$(awk '/^Max open files/{print ($4 == $5) ? "fixed" : $4 " " $5}' /proc/"$vm"/limits)
	expect_eq "file limit cannot be raised" fixed "$nofile"
else
	nok "sandboxed guest came up: $(head -c 500 "$base/err")"
fi
touch "$share/done"
wait "$pid"; rc=$? pid=''
expect_eq "sandboxed guest exits 0" 0 "$rc"
expect_eq "nothing on stderr (no refused system call)" "" "$(cat "$base/err")"
expect_eq "fsprobe status" "fsprobe-rc 0" "$(grep fsprobe-rc "$base/out")"
nfail=$(grep -c '^not ok' "$share/probe.out" 2>/dev/null)
expect_eq "fsprobe checks pass under the filter $(grep '^not ok' "$share/probe.out" 2>/dev/null |
	head -n 3 | tr '\n' '|')" 0 "${nfail:-missing}"
[ "$(grep -c '^ok' "$share/probe.out" 2>/dev/null)" -ge 20 ] && ok "fsprobe ran its checks" ||
	nok "fsprobe ran its checks: $(tail -n 2 "$share/probe.out" 2>&1 | tr '\n' '|')"

# --- sandbox none ---------------------------------------------------------------------
rm -rf "$share/ready" "$share/done" "$share/work"
timeout 600 "$M" --sandbox none --kernel "$K" --initrd "$G" --share "tag=t,path=$share,cache=auto" \
	-- sh -c "$guest_wait" >"$base/out" 2>"$base/err" </dev/null &
pid=$!
if wait_ready; then
	expect_match "--sandbox none: no filter" '^[0-9]+ threads, seccomp modes: 0 $' "$(seccomp_modes)"
	expect_eq "--sandbox none: host mount namespace" "$(readlink /proc/self/ns/mnt)" \
		"$(readlink /proc/"$vm"/ns/mnt)"
else
	nok "--sandbox none guest came up: $(head -c 500 "$base/err")"
fi
touch "$share/done"
wait "$pid"; rc=$? pid=''
expect_eq "--sandbox none guest exits 0" 0 "$rc"
expect_eq "--sandbox none: one warning line" 1 "$(wc -l < "$base/err")"
expect_match "--sandbox none: the line says so" '^minivmm: warning: --sandbox none' "$(cat "$base/err")"
finish
