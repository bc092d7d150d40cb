#!/bin/bash
# Benchmark (issue: minivmm run): wall time of `minivmm run -- true` against the same done
# with QEMU and virtiofsd: the same kernel (unpacked: QEMU boots the vmlinux through its PVH
# entry, minivmm from its kernel cache), the same guest image (the one `minivmm run` built
# and cached, with the same /minivmm/run spec appended), the host's / read-only (tag root,
# cache=always) and the working directory read-write (tag s0, cache=auto) each served by a
# virtiofsd, stdout/stderr on virtio-serial ports named like minivmm's console ports, the
# status through isa-debug-exit on port 0xf4.  1 vCPU, 1 GiB each; medians of N runs
# (default 5), alternating, after one warm-up run of each.
# Usage: tests/bench/run.sh MINIVMM [KERNEL]
#   RUNBENCH_N: runs per configuration (default 5)
set -u
. "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || { echo "usage: tests/bench/run.sh MINIVMM [KERNEL]" >&2; exit 2; }
M=$(realpath "$1")
K=${2:-/boot/vmlinuz-$(uname -r)}
K=$(realpath "$K")
N=${RUNBENCH_N:-5}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

work=$(mktemp -d "${TMPDIR:-/tmp}/runbench.XXXXXX") || exit 1
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
now() { date +%s.%N; }

# minivmm run builds and caches its guest image on first use: do that (and check that
# run works at all) before timing anything.
"$M" run -q --kernel "$K" -- true || { echo "run.sh: minivmm run -- true failed" >&2; exit 1; }
kver=$(. "$repo/tools/lib/initramfs.sh" && irfs_kver_of_image "$K") || exit 1
cache=${XDG_CACHE_HOME:-$HOME/.cache}/minivmm
img=$(ls -t "$cache/run/$kver"-*.img 2>/dev/null | head -n 1)
[ -n "$img" ] || { echo "run.sh: no cached guest image in $cache/run" >&2; exit 1; }
vmlinux=$work/vmlinux
(. "$repo/tools/lib/initramfs.sh" && irfs_extract_vmlinux "$K" "$vmlinux") || vmlinux=$K

# The spec minivmm appends (see guest/minivmm-run.c), for the same command.
mkdir -p "$work/spec/minivmm"
{
	printf 'uid\0%s\0gid\0%s\0cwd\0%s\0stdin\0null\0' "$(id -u)" "$(id -g)" "$work"
	printf 'share\0rw:s0:%s\0' "$work"
	printf 'env\0PATH=%s\0env\0HOME=%s\0arg\0true\0' "$PATH" "${HOME:-/}"
} >"$work/spec/minivmm/run"
cp "$img" "$work/qemu.img"
truncate -s $(( ($(stat -c %s "$work/qemu.img") + 3) / 4 * 4 )) "$work/qemu.img"
(cd "$work/spec" && find minivmm | cpio -o -H newc --quiet) >>"$work/qemu.img"

run_minivmm() { "$M" run -q --kernel "$K" -- true </dev/null; }

run_qemu() {
	local s=$work/sock rc
	rm -f "$s.root" "$s.s0"
	"$VIRTIOFSD" --socket-path="$s.root" -o source=/ -o cache=always -o sandbox=chroot \
		>"$work/virtiofsd-root.log" 2>&1 &
	pids=($!)
	"$VIRTIOFSD" --socket-path="$s.s0" -o source="$work" -o cache=auto -o sandbox=chroot \
		>"$work/virtiofsd-s0.log" 2>&1 &
	pids+=($!)
	while [ ! -S "$s.root" ] || [ ! -S "$s.s0" ]; do sleep 0.01; done
	qemu-system-x86_64 -M pc -accel kvm -cpu host -m 1G -smp 1 -nodefaults -no-reboot \
		-display none -kernel "$vmlinux" -initrd "$work/qemu.img" \
		-append "console=ttyS0 reboot=k panic=-1 quiet loglevel=1" -serial file:"$work/serial.log" \
		-object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem \
		-chardev socket,id=vr,path="$s.root" -device vhost-user-fs-pci,chardev=vr,tag=root \
		-chardev socket,id=vs,path="$s.s0" -device vhost-user-fs-pci,chardev=vs,tag=s0 \
		-device virtio-rng-pci -device virtio-serial-pci \
		-chardev stdio,id=out -device virtserialport,chardev=out,name=minivmm.stdout \
		-chardev file,id=err,path="$work/err.log" -device virtserialport,chardev=err,name=minivmm.stderr \
		-device isa-debug-exit,iobase=0xf4,iosize=1 </dev/null >"$work/qemu.log" 2>&1
	rc=$?
	# isa-debug-exit: QEMU exits with (status << 1) | 1, so `true` is 1.
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
	pids=()
	[ "$rc" = 1 ] && return 0
	echo "run.sh: QEMU exited with $rc:" >&2
	tail -n 20 "$work/qemu.log" "$work/serial.log" "$work/err.log" >&2
	return 1
}

# One warm-up run of each (page cache, first-use costs), then alternate.
run_minivmm || { echo "run.sh: minivmm failed" >&2; exit 1; }
run_qemu || { echo "run.sh: QEMU + virtiofsd failed" >&2; exit 1; }
: >"$work/t.minivmm"
: >"$work/t.qemu"
for _ in $(seq "$N"); do
	t0=$(now); run_minivmm || echo "run.sh: minivmm failed" >&2; t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$work/t.minivmm"
	t0=$(now); run_qemu || echo "run.sh: QEMU failed" >&2; t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$work/t.qemu"
done
a=$(median <"$work/t.minivmm") b=$(median <"$work/t.qemu")
echo "minivmm run -- true vs QEMU + 2 virtiofsd, same kernel and guest image; 1 vCPU, 1 GiB;"
echo "wall seconds, median of $N (all: minivmm $(tr '\n' ' ' <"$work/t.minivmm")| qemu $(tr '\n' ' ' <"$work/t.qemu"))"
printf '  %-28s %8.3f s\n' "minivmm run -- true" "$a" "QEMU + virtiofsd" "$b"
printf '  %-28s %8.2fx (goal <= 0.5x)\n' "ratio minivmm/QEMU" "$(awk -v a="$a" -v b="$b" 'BEGIN { print a / b }')"
