#!/bin/bash
# Benchmark (issue: virtio-fs): the shared-directory workload of tests/bench/fsbench.c
# (small files: create, stat, open+read, readdir, unlink; a 16 MiB file: sequential write
# + fsync, sequential read, random 4 KiB pread, mmap random reads; cold guest caches) on
#   minivmm   --share tag=t,path=DIR (built-in virtio-fs, cache=auto)
#   virtiofsd QEMU pc + vhost-user-fs-pci + QEMU's C virtiofsd (cache=auto, sandbox=chroot)
#   9p        QEMU pc + virtio-9p-pci (passthrough), mounted cache=loose
# with the same kernel and guest image (plus the 9p modules for the last one), one boot
# each, 1 vCPU and 512 MiB, side by side in one run.
# Usage: tests/bench/fs.sh MINIVMM KERNEL GUEST_IMAGE
#   FSBENCH_TIMEOUT: seconds per guest (default 900)
set -u
. "$(dirname "$0")/lib.sh"
[ $# -eq 3 ] || { echo "usage: tests/bench/fs.sh MINIVMM KERNEL GUEST_IMAGE" >&2; exit 2; }
M=$(realpath "$1") K=$(realpath "$2") G=$(realpath "$3")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
TMO=${FSBENCH_TIMEOUT:-900}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

# Under the repository's build/: other jobs clean /tmp, and the emulated host shares the
# repository with its own host.
mkdir -p "$repo/build/bench"
base=$(mktemp -d "$repo/build/bench/fs.XXXXXX") || exit 1
share=$base/share
mkdir "$share"
# virtiofsd's socket cannot live on the share (under emuhost the repository is a 9p
# mount, where AF_UNIX sockets cannot be bound): a private directory in /tmp.
sockdir=$(mktemp -d "${TMPDIR:-/tmp}/fsbench.XXXXXX") || exit 1
vfsd_pid=
cleanup() {
	[ -n "$vfsd_pid" ] && kill "$vfsd_pid" 2>/dev/null
	rm -rf "$base" "$sockdir"
}
trap cleanup EXIT

# fsbench into the share: the Makefile builds build/bench/fsbench; build it if missing.
fsb=$repo/build/bench/fsbench
if [ ! -x "$fsb" ] || [ "$here/fsbench.c" -nt "$fsb" ]; then
	gcc -static -O2 -Wall -Wextra -o "$fsb" "$here/fsbench.c" || exit 1
fi
cp "$fsb" "$share/fsbench"

# The guest image with the 9p modules, next to the plain one (the Makefile builds it too).
# A kernel without them (e.g. Debian's cloud kernel) runs the other two only.
G9=${G%.img}-9p.img
if [ ! -s "$G9" ] || [ "$G" -nt "$G9" ]; then
	kver=$(. "$repo/tools/lib/initramfs.sh" && irfs_kver_of_image "$K") &&
		"$repo/guest/mkinitrd" --kver "$kver" --extra-modules "9p 9pnet_virtio" -o "$G9" ||
		{ echo "fs.sh: no guest image with 9p for this kernel: skipping the 9p peer" >&2; G9=; }
fi

run_cmd='/mnt/t/fsbench /mnt/t/work; echo "fsbench_status $?"'
mount9p='mkdir -p /mnt/t && mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose t /mnt/t || echo "mount 9p failed"'

# qemu IMAGE APPEND_EXTRA QEMU_ARGS... -- CMD...
qemu() {
	local g=$1 extra=$2 img=$base/qemu-initrd.img args=()
	shift 2
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	qemu_initrd "$g" "$img" "$@"
	timeout "$TMO" qemu-system-x86_64 -M pc -accel kvm -cpu host -m 512 -smp 1 -nodefaults \
		-no-reboot -display none -serial stdio -kernel "$K" -initrd "$img" \
		-append "console=ttyS0 reboot=k panic=-1 quiet loglevel=1$extra" \
		-device isa-debug-exit,iobase=0xf4,iosize=1 "${args[@]}" </dev/null
	local rc=$?
	rm -f "$img"
	return $rc
}

# (a) minivmm
rm -rf "$share/work"
timeout "$TMO" "$M" --kernel "$K" --initrd "$G" --mem 512M --cpus 1 \
	--share "tag=t,path=$share" -- sh -c "$run_cmd" </dev/null >"$base/minivmm.out" 2>&1
echo "minivmm exit $?" >>"$base/minivmm.out"

# (b) QEMU + virtiofsd
rm -rf "$share/work"
sock=$sockdir/vfsd.sock
"$VIRTIOFSD" --socket-path="$sock" -o source="$share" -o cache=auto -o sandbox=chroot \
	>"$base/virtiofsd.log" 2>&1 &
vfsd_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
qemu "$G" " minivmm.share=t" \
	-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
	-chardev socket,id=vfs,path="$sock" -device vhost-user-fs-pci,chardev=vfs,tag=t -- \
	sh -c "$run_cmd" >"$base/virtiofsd.out" 2>&1
echo "qemu exit $?" >>"$base/virtiofsd.out"
kill "$vfsd_pid" 2>/dev/null
wait "$vfsd_pid" 2>/dev/null
vfsd_pid=

# (c) QEMU + virtio-9p
rm -rf "$share/work"
if [ -n "$G9" ]; then
	qemu "$G9" "" \
		-fsdev local,id=fs9,security_model=passthrough,path="$share" \
		-device virtio-9p-pci,fsdev=fs9,mount_tag=t -- \
		sh -c "$mount9p; $run_cmd" >"$base/9p.out" 2>&1
	echo "qemu exit $?" >>"$base/9p.out"
else
	echo "skipped: no guest image with the 9p modules" >"$base/9p.out"
fi

# The table.
names=(create_write_files_per_s stat_cold_ops_per_s open_read_cold_ops_per_s
	readdir_entries_per_s unlink_ops_per_s seqwrite_fsync_MB_per_s seqread_cold_MB_per_s
	randread_4k_cold_ops_per_s mmap_rand_byte_ops_per_s)
labels=("create + 100 B write, files/s" "stat, cold cache, ops/s" "open + read 100 B, cold, ops/s"
	"readdir, entries/s" "unlink, ops/s" "seq write 1 MiB + fsync, MB/s"
	"seq read, cold, MB/s" "random 4 KiB pread, cold, ops/s" "mmap random byte read, ops/s")
val() { tr -d '\r' <"$base/$1.out" | awk -v n="$2" '$1 == n && NF == 2 { print $2 }' | tail -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "shared-directory workload (tests/bench/fsbench.c: 300 files, 16 MiB file; 1 vCPU, 512 MiB;"
echo "one boot each; MB = 2^20 bytes; ratios > 1: minivmm faster)"
printf '  %-34s %10s %10s %10s %9s %9s\n' figure minivmm virtiofsd 9p mv/vfsd mv/9p
for i in "${!names[@]}"; do
	a=$(val minivmm "${names[$i]}") b=$(val virtiofsd "${names[$i]}") c=$(val 9p "${names[$i]}")
	printf '  %-34s %10s %10s %10s %8sx %8sx\n' "${labels[$i]}" "${a:--}" "${b:--}" "${c:--}" \
		"$(ratio "$a" "$b")" "$(ratio "$a" "$c")"
done

echo "virtio interrupts the guest took during each figure (all devices; ~ request round trips)"
for i in "${!names[@]}"; do
	printf '  %-34s %10s %10s %10s\n' "${labels[$i]}" "$(val minivmm "${names[$i]}_irqs")" \
		"$(val virtiofsd "${names[$i]}_irqs")" "$(val 9p "${names[$i]}_irqs")"
done

# Every configuration must have run to the end; otherwise show what it printed.
ok=0
for cfg in minivmm virtiofsd 9p; do
	if [ "$(val "$cfg" fsbench_done)" != 1 ] || [ "$(val "$cfg" fsbench_status)" != 0 ]; then
		ok=1
		echo "fs.sh: $cfg did not complete the workload; its output:" >&2
		tr -d '\r' <"$base/$cfg.out" | tail -n 40 | sed 's/^/    /' >&2
		[ "$cfg" = virtiofsd ] && tail -n 20 "$base/virtiofsd.log" | sed 's/^/    virtiofsd: /' >&2
	fi
done
exit $ok
