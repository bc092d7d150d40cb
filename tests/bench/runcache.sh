#!/bin/bash
# Benchmark (issue: install): what a cached `minivmm run -- true` costs through the
# emulated host, against a plain `minivmm --kernel K --initrd G -- true` there, both
# started from this machine exactly as a user would (the emulated host's own start-up is in
# both).  The first run fills the cache (guest image, unpacked kernel, emulated host image)
# and is reported apart; then medians of N alternating runs (default 3).  On a machine with
# hardware KVM both run directly and the ratio is the cost of run's own set-up.
# Usage: tests/bench/runcache.sh MINIVMM KERNEL GUEST_IMAGE
#   RUNCACHE_N: runs per configuration (default 3)
set -u
[ $# -ge 3 ] || { echo "usage: tests/bench/runcache.sh MINIVMM KERNEL GUEST_IMAGE" >&2; exit 2; }
M=$(realpath "$1") K=$(realpath "$2") G=$(realpath "$3")
N=${RUNCACHE_N:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/runcache.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export XDG_CACHE_HOME=$work/cache      # an empty cache: the first run pays for everything
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

t0=$(now)
"$M" run -q --kernel "$K" -- true || { echo "runcache: minivmm run -- true failed" >&2; exit 1; }
first=$(secs "$t0" "$(now)")
for i in $(seq "$N"); do
	t0=$(now); "$M" run -q --kernel "$K" -- true; echo "$(secs "$t0" "$(now)")" >>"$work/run"
	t0=$(now); "$repo/tools/with-kvm" -- "$M" --kernel "$K" --initrd "$G" -- true
	echo "$(secs "$t0" "$(now)")" >>"$work/plain"
done
r=$(median <"$work/run") p=$(median <"$work/plain")
printf 'minivmm run -- true: first (empty cache) %.1f s; then median %.1f s vs plain minivmm -- true %.1f s: %.2fx (goal <= 1.3x)\n' \
	"$first" "$r" "$p" "$(awk -v r="$r" -v p="$p" 'BEGIN { print r / p }')"
