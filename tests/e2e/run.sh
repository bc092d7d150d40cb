#!/bin/bash
# All end-to-end suites in one KVM host boot (under emulation each boot costs seconds):
# every suite runs even if an earlier one failed; the closing line sums them up.
# Usage: tests/e2e/run.sh MINIVMM KERNEL GUEST_IMAGE
set -u
here=$(dirname "$0")
pass=0 fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for suite in clikvm boot virtio fs dax runcmd sandbox k612; do
	echo "# $suite"
	"$here/$suite.sh" "$@" 2>&1 | tee "$log"
	out=$(tail -n 1 "$log")
	p=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
	f=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
	if [ -z "$p" ]; then
		echo "not ok - suite $suite ended without a result line"
		fail=$((fail + 1))
		continue
	fi
	pass=$((pass + p)) fail=$((fail + f))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
