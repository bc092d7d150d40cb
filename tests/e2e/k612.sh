#!/bin/bash
# End-to-end with a second guest kernel: Debian's 6.12 cloud kernel (virtio and virtio-fs
# built in, no modules) drives several virtio-fs request queues and, offered more queues
# than it has CPUs, leaves the rest unready.  tools/deps unpacks it into
# /usr/local/lib/minivmm/kernels ($MINIVMM_KERNELS).
# Usage: tests/e2e/k612.sh MINIVMM KERNEL GUEST_IMAGE (the module-free image
# initrd-nomod.img is taken from next to GUEST_IMAGE; KERNEL is not used).
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1") G=$3
GN=$(dirname "$G")/initrd-nomod.img
K=$(ls "${MINIVMM_KERNELS:-/usr/local/lib/minivmm/kernels}"/vmlinuz-6.12.*-cloud-amd64 2>/dev/null | sort -V | tail -n 1)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
VM_TIMEOUT=${VM_TIMEOUT:-300}
if [ -z "$K" ] || [ ! -f "$GN" ]; then
	nok "6.12 cloud kernel ($K) or module-free guest image ($GN) missing: run tools/deps and make"
	finish
	exit 1
fi
vm() { timeout "$VM_TIMEOUT" "$M" --kernel "$K" --initrd "$GN" "$@" </dev/null; }

# One writer per CPU, each pinned: Linux 6.11+ sends a request on the queue of the CPU
# that makes it.  Prints the request-queue interrupt lines afterwards.
work='n=$(nproc); c=0
while [ $c -lt $n ]; do
	taskset -c $c sh -c "i=0; while [ \$i -lt 40 ]; do echo $c.\$i >/mnt/t/f$c.\$i; cat /mnt/t/f$c.\$i >/dev/null; i=\$((i+1)); done" &
	c=$((c+1))
done
wait
ls /mnt/t | wc -l
grep requests /proc/interrupts'

# queues_used OUT NCPU: how many request-queue interrupt lines counted anything.
queues_used() {
	echo "$1" | awk -v n="$2" '/requests/ { s = 0; for (i = 2; i <= n + 1; i++) s += $i; if (s > 0) u++ } END { print u + 0 }'
}

for cfg in "2 4" "4 2" "1 16"; do
	set -- $cfg
	cpus=$1 queues=$2
	rm -rf "$T/share" && mkdir "$T/share"
	out=$(vm --cpus "$cpus" --share "tag=t,path=$T/share,queues=$queues" -- sh -c "$work" 2>&1); rc=$?
	expect_eq "6.12, --cpus $cpus, queues=$queues: guest command succeeds" 0 "$rc"
	expect_eq "6.12, --cpus $cpus, queues=$queues: every file written" $((cpus * 40)) "$(echo "$out" | sed -n 1p)"
	expect_eq "6.12, --cpus $cpus, queues=$queues: host sees every file" $((cpus * 40)) "$(ls "$T/share" | wc -l)"
	want=$((cpus < queues ? cpus : queues))
	used=$(queues_used "$out" "$cpus")
	if [ "$want" -gt 1 ]; then
		if [ "$used" -gt 1 ]; then
			ok "6.12, --cpus $cpus, queues=$queues: requests on $used request queues"
		else
			nok "6.12, --cpus $cpus, queues=$queues: requests on $used request queue(s): $out"
		fi
	else
		expect_eq "6.12, --cpus 1, queues=16: one request queue used" 1 "$used"
	fi
done

finish
