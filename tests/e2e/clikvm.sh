#!/bin/bash
# Bad input that only a working /dev/kvm can reveal (KVM's vCPU limit, /dev/kvm not
# permitted): one line on stderr, exit 1, no guest.  Runs where KVM is: run.sh runs it
# inside the emulated host when this machine has no hardware KVM.
# Usage: tests/e2e/clikvm.sh MINIVMM KERNEL [GUEST_IMAGE]
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1")
K=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

bad "--cpus above KVM's limit"  "--cpus 100000 is more than this KVM allows" --kernel "$K" --cpus 100000
if [ "$(id -u)" = 0 ]; then
	# An unprivileged user cannot open root's /dev/kvm (mode 0600 in the emulated host,
	# 0660 root:kvm on Debian).
	if setpriv --reuid=65534 --regid=65534 --clear-groups sh -c ': <>/dev/kvm' 2>/dev/null; then
		nok "/dev/kvm not permitted: nobody can open /dev/kvm here, the check cannot run"
	else
		out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$M" --kernel "$K" 2>&1 >/dev/null); rc=$?
		expect_eq "/dev/kvm not permitted: status" 1 "$rc"
		expect_match "/dev/kvm not permitted: message" "cannot open /dev/kvm: permission denied" "$out"
	fi
fi
finish
