#!/bin/bash
# Benchmark (issue: virtio transports): request/response round trips per second through
# virtio-rng, 64-byte reads of /dev/hwrng — each one a notification and an interrupt —
# for minivmm and QEMU on PCI (QEMU pc + virtio-rng-pci) and MMIO (QEMU microvm +
# virtio-rng-device), the same kernel and guest image, side by side in one run.
# Usage: tests/bench/rng.sh MINIVMM KERNEL GUEST_IMAGE
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1") K=$2 G=$3
N=${RNG_BENCH_READS:-3000}
# Three timed rounds inside one boot; /proc/uptime has 10 ms resolution, so N reads must
# take well over a second.
guest_cmd='for r in 1 2 3; do
  read a x </proc/uptime; dd if=/dev/hwrng of=/dev/null bs=64 count='$N' 2>/dev/null; read b x </proc/uptime
  awk -v a=$a -v b=$b -v n='$N' "BEGIN { printf \"rate %d\\n\", n / (b - a) }"; done'

rate() { grep '^rate' | awk '{ print $2 }' | median; }

mv_pci=$("$M" --kernel "$K" --initrd "$G" --transport pci -- sh -c "$guest_cmd" </dev/null | rate)
q_pci=$(run_qemu pc virtio-rng-pci "$K" "$G" sh -c "$guest_cmd" | rate)
mv_mmio=$("$M" --kernel "$K" --initrd "$G" --transport mmio -- sh -c "$guest_cmd" </dev/null | rate)
q_mmio=$(run_qemu microvm virtio-rng-device "$K" "$G" sh -c "$guest_cmd" | rate)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "virtio-rng 64-byte round trips/s (median of 3 rounds of $N reads)"
printf '  %-6s minivmm %8s   qemu %8s   ratio %sx\n' pci "$mv_pci" "$q_pci" "$(ratio "$mv_pci" "$q_pci")"
printf '  %-6s minivmm %8s   qemu %8s   ratio %sx\n' mmio "$mv_mmio" "$q_mmio" "$(ratio "$mv_mmio" "$q_mmio")"
[ -n "$mv_pci" ] && [ -n "$mv_mmio" ] && [ -n "$q_pci" ] && [ -n "$q_mmio" ]
