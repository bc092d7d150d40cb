#!/bin/bash
# End-to-end: virtio-rng on each transport, found by the stock kernel (PCI enumeration,
# or ACPI LNRO0005 devices for virtio-mmio), read through /dev/hwrng; MSI-X on PCI and the
# INTx fallback when MSI is off.  Usage: tests/e2e/virtio.sh MINIVMM KERNEL GUEST_IMAGE
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1") K=$2 G=$3
# Every guest is bounded: a hang must fail its check, not stall the whole run.
vm() { timeout "${VM_TIMEOUT:-300}" "$M" --kernel "$K" --initrd "$G" "$@" </dev/null; }

# What the guest reports, one fact per line, so each can be checked on its own.
probe='
for d in /sys/bus/virtio/devices/*; do echo "dev $(basename $d) $(cat $d/device)"; done
echo "hwrng $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
n=$(dd if=/dev/hwrng bs=4096 count=256 2>/dev/null | tee /tmp/r | wc -c); echo "bytes $n"
echo "distinct $(od -An -tx1 -v /tmp/r | tr " " "\n" | grep -v "^$" | sort -u | wc -l)"
grep -i virtio /proc/interrupts | sed "s/^ *[0-9]*: *//; s/^[0-9 ]*//; s/^/irq /"
'

for t in pci mmio; do
	out=$(vm --transport $t -- sh -c "$probe"); rc=$?
	expect_eq "$t: guest ran" 0 "$rc"
	expect_match "$t: virtio-rng (device id 4) on the virtio bus" "^dev virtio0 0x0004$" "$out"
	expect_match "$t: /dev/hwrng is virtio" "^hwrng virtio_rng" "$out"
	expect_eq "$t: read 1 MiB from /dev/hwrng" "bytes 1048576" "$(echo "$out" | grep '^bytes')"
	expect_eq "$t: the bytes are random (all 256 values seen)" "distinct 256" "$(echo "$out" | grep '^distinct')"
	if [ $t = pci ]; then
		expect_match "pci: interrupts are MSI-X" "^irq .*PCI-MSI.*virtio0" "$out"
	else
		expect_match "mmio: edge interrupt on the IOAPIC" "^irq .*IO-APIC +1[6-9]-edge +virtio0" "$out"
	fi
	echo "$out" | sed 's/^/    /'
done

out=$(vm --transport pci --cmdline pci=nomsi -- sh -c "$probe"); rc=$?
expect_eq "pci INTx fallback: read 1 MiB" "bytes 1048576" "$(echo "$out" | grep '^bytes')"
expect_match "pci INTx fallback: level interrupt on the IOAPIC" "^irq .*IO-APIC +2[0-3]-fasteoi +virtio0" "$out"

out=$(vm --no-rng -- sh -c 'ls /sys/bus/virtio/devices | wc -l'); rc=$?
expect_eq "--no-rng: no virtio device" "0" "$out"
finish
