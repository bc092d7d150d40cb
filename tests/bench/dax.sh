#!/bin/bash
# Benchmark (issue: DAX): tests/bench/daxbench.c on one file of a share, cold guest caches:
# 1 MiB sequential reads of the whole file and random one-byte loads through mmap, with the
# guest page cache each one filled, under
#   nodax     minivmm --share tag=t,path=DIR              (virtio-fs, cache=auto)
#   dax       minivmm --share tag=t,path=DIR,dax=FILE     (window as large as the file)
#   dax/16    minivmm --share tag=t,path=DIR,dax=FILE/16  (the guest must keep re-mapping)
#   virtiofsd QEMU pc + vhost-user-fs-pci + QEMU's C virtiofsd (cache=auto; no DAX: QEMU
#             has none upstream)
# one boot each, same kernel and guest image, 1 vCPU, 512 MiB, side by side in one run.
# Usage: tests/bench/dax.sh MINIVMM KERNEL GUEST_IMAGE
#   DAXBENCH_MB: file size in MiB (default 256, as the issue asks; a multiple of 128 keeps
#   the 1/16 window at 8 MiB or more, the smallest minivmm takes)
#   DAXBENCH_READS: random mmap loads (default 2000: under emulation a DAX page fault costs
#   milliseconds); DAXBENCH_TIMEOUT: seconds per guest (default 900)
set -u
. "$(dirname "$0")/lib.sh"
[ $# -eq 3 ] || { echo "usage: tests/bench/dax.sh MINIVMM KERNEL GUEST_IMAGE" >&2; exit 2; }
M=$(realpath "$1") K=$(realpath "$2") G=$(realpath "$3")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
MB=${DAXBENCH_MB:-256}
READS=${DAXBENCH_READS:-2000}
TMO=${DAXBENCH_TIMEOUT:-900}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
small=$((MB / 16))
if [ $((MB % 128)) -ne 0 ] || [ "$MB" -lt 128 ]; then
	echo "dax.sh: DAXBENCH_MB must be a multiple of 128 (the 1/16 window: whole 2 MiB ranges, at least 8 MiB)" >&2
	exit 2
fi

mkdir -p "$repo/build/bench"
base=$(mktemp -d "$repo/build/bench/dax.XXXXXX") || exit 1
sockdir=$(mktemp -d "${TMPDIR:-/tmp}/daxbench.XXXXXX") || exit 1
vfsd_pid='' img=''
cleanup() {
	[ -n "$vfsd_pid" ] && kill "$vfsd_pid" 2>/dev/null
	[ -n "$img" ] && umount "$base/tmpfs" 2>/dev/null
	rm -rf "$base" "$sockdir"
}
trap cleanup EXIT

# The share on a local file system: under the emulated host build/ is 9p, so there the
# file lives on a tmpfs (the emulated host's memory; a warm host page cache either way).
share=$base/share
fstype() { df --output=fstype "$1" | tail -n 1; }
if [ "$(fstype "$base")" = 9p ]; then
	mkdir "$base/tmpfs" && mount -t tmpfs -o size=$((MB * 2 + 64))M none "$base/tmpfs" &&
		share=$base/tmpfs/share && img=tmpfs
fi
mkdir -p "$share"

dxb=$repo/build/bench/daxbench
if [ ! -x "$dxb" ] || [ "$here/daxbench.c" -nt "$dxb" ]; then
	gcc -static -O2 -Wall -Wextra -o "$dxb" "$here/daxbench.c" || exit 1
fi
cp "$dxb" "$share/daxbench"
head -c $((MB << 20)) /dev/urandom >"$share/file"
run_cmd="/mnt/t/daxbench /mnt/t/file $READS"

minivmm() {
	timeout "$TMO" "$M" --kernel "$K" --initrd "$G" --mem 512M --cpus 1 \
		--share "tag=t,path=$share$1" -- sh -c "$run_cmd" </dev/null >"$base/$2.out" 2>&1
	echo "exit $?" >>"$base/$2.out"
}
minivmm "" nodax
minivmm ",dax=${MB}M" dax
minivmm ",dax=${small}M" dax16

sock=$sockdir/vfsd.sock
"$VIRTIOFSD" --socket-path="$sock" -o source="$share" -o cache=auto -o sandbox=chroot \
	>"$base/virtiofsd.log" 2>&1 &
vfsd_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
qimg=$base/qemu-initrd.img
qemu_initrd "$G" "$qimg" sh -c "$run_cmd"
timeout "$TMO" qemu-system-x86_64 -M pc -accel kvm -cpu host -m 512 -smp 1 -nodefaults \
	-no-reboot -display none -serial stdio -kernel "$K" -initrd "$qimg" \
	-append "console=ttyS0 reboot=k panic=-1 quiet loglevel=1 minivmm.share=t" \
	-device isa-debug-exit,iobase=0xf4,iosize=1 \
	-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
	-chardev socket,id=vfs,path="$sock" -device vhost-user-fs-pci,chardev=vfs,tag=t \
	</dev/null >"$base/virtiofsd.out" 2>&1
echo "exit $?" >>"$base/virtiofsd.out"
kill "$vfsd_pid" 2>/dev/null
wait "$vfsd_pid" 2>/dev/null
vfsd_pid=

val() { tr -d '\r' <"$base/$1.out" | awk -v n="$2" '$1 == n && NF == 2 { print $2 }' | tail -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
cfgs=(nodax dax dax16 virtiofsd)

echo "DAX workload (tests/bench/daxbench.c): a ${MB} MiB file, cold guest caches, 1 vCPU, 512 MiB;"
echo "windows: dax = ${MB} MiB, dax/16 = ${small} MiB; one boot each; MB = 2^20 bytes"
printf '  %-30s %10s %10s %10s %10s\n' figure nodax dax dax/16 virtiofsd
for f in mmap_rand_ops_per_s seqread_MB_per_s mmap_cached_KiB seqread_cached_KiB; do
	printf '  %-30s' "$f"
	for c in "${cfgs[@]}"; do printf ' %10s' "$(val "$c" "$f")"; done
	echo
done
echo "ratios (> 1: the first is faster; page cache: DAX / no DAX, lower is better)"
for f in mmap_rand_ops_per_s seqread_MB_per_s; do
	printf '  %-30s dax/nodax %6sx  dax16/nodax %6sx  dax/virtiofsd %6sx  nodax/virtiofsd %6sx\n' "$f" \
		"$(ratio "$(val dax "$f")" "$(val nodax "$f")")" "$(ratio "$(val dax16 "$f")" "$(val nodax "$f")")" \
		"$(ratio "$(val dax "$f")" "$(val virtiofsd "$f")")" "$(ratio "$(val nodax "$f")" "$(val virtiofsd "$f")")"
done
for f in mmap_cached_KiB seqread_cached_KiB; do
	printf '  %-30s dax/nodax %6sx  dax16/nodax %6sx\n' "$f" \
		"$(ratio "$(val dax "$f")" "$(val nodax "$f")")" "$(ratio "$(val dax16 "$f")" "$(val nodax "$f")")"
done

# Every configuration must have finished and read the same bytes.
ok=0
want_seq=$(val nodax seqread_sum) want_mmap=$(val nodax mmap_sum)
for c in "${cfgs[@]}"; do
	if [ "$(val "$c" daxbench_done)" != 1 ] || [ "$(val "$c" seqread_sum)" != "$want_seq" ] ||
		[ "$(val "$c" mmap_sum)" != "$want_mmap" ]; then
		ok=1
		echo "dax.sh: $c did not complete the workload or read other bytes; its output:" >&2
		tr -d '\r' <"$base/$c.out" | tail -n 30 | sed 's/^/    /' >&2
		[ "$c" = virtiofsd ] && tail -n 20 "$base/virtiofsd.log" | sed 's/^/    virtiofsd: /' >&2
	fi
done
exit $ok
