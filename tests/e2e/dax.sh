#!/bin/bash
# End-to-end: virtio-fs DAX (--share ...,dax=SIZE) on each transport.  One guest shares a
# directory twice, once with a 16 MiB window (tag d, mounted -o dax) and once without
# (tag n), and:
#   - reads a file the host wrote through DAX and checksums it;
#   - writes through a shared mapping and msyncs; the host reads the bytes while the
#     guest still holds the mapping;
#   - read(O_DIRECT)s into, and write(O_DIRECT)s from, a DAX mapping, so request buffers
#     are window memory;
#   - reads a 48 MiB file (3x the window: the guest must reclaim ranges) through DAX and
#     without, comparing checksums and the growth of Cached in /proc/meminfo;
# then a second guest maps a file the host truncates under it: minivmm must stop with
# status 122 and one line saying why.  Finally, bad dax= values are refused.
# Usage: tests/e2e/dax.sh MINIVMM KERNEL GUEST_IMAGE
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1") K=$2 G=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$repo/build"
base=$(mktemp -d "$repo/build/dax-e2e.XXXXXX") || exit 1
bg='' img=''
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null
	if [ -n "$img" ]; then
		umount "$base/ext4" 2>/dev/null
		rm -f "$img"
	fi
	rm -rf "$base"
}
trap cleanup EXIT

# As in fs.sh: under the emulated host build/ is 9p, no file system anyone shares with
# DAX; use an ext4 image there (DAX_E2E_PLAIN=1 keeps $base whatever it is).
root=$base
fstype() { df --output=fstype "$1" | tail -n 1; }
if [ "$(fstype "$base")" = 9p ] && [ -z "${DAX_E2E_PLAIN:-}" ]; then
	modprobe -q loop 2>/dev/null; modprobe -q ext4 2>/dev/null
	img=$(mktemp "${TMPDIR:-/tmp}/dax-e2e.XXXXXX.img") &&
	truncate -s 1G "$img" && mkfs.ext4 -q -F "$img" && mkdir "$base/ext4" &&
	mount -o loop "$img" "$base/ext4" && root=$base/ext4
	[ "$root" = "$base" ] && nok "shares on ext4: cannot mount an ext4 image on $base/ext4"
fi
echo "# shares on $(fstype "$root") under $root"
VM_TIMEOUT=${DAX_E2E_TIMEOUT:-600}
vm() { timeout "$VM_TIMEOUT" "$M" --kernel "$K" --initrd "$G" "$@" </dev/null; }
marker() { printf '%s\n' "$out" | sed -n "s/^$1: //p" | head -n 1; }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
indent() { sed 's/^/    /'; }

probe=$(cat <<'EOF'
echo "dax-mount: $(grep '^d /mnt/d virtiofs ' /proc/mounts | cut -d' ' -f4)"
echo "nodax-mount: $(grep '^n /mnt/n virtiofs ' /proc/mounts | cut -d' ' -f4)"
echo "hello-sum: $(sha256sum /mnt/d/hello.bin | cut -d' ' -f1)"
/mnt/d/daxprobe mmapwrite /mnt/d/mw.bin 4101 "$MWTEXT"
: >/mnt/d/mw.done
i=0
while [ ! -e /mnt/d/mw.seen ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
/mnt/d/daxprobe readinto /mnt/n/src.bin /mnt/d/into.bin 65536
/mnt/d/daxprobe writefrom /mnt/d/hello.bin /mnt/n/out.bin 65536
cached() { sed -n 's/^Cached: *\([0-9]*\) kB/\1/p' /proc/meminfo; }
sync; echo 3 >/proc/sys/vm/drop_caches
c0=$(cached); s=$(sha256sum /mnt/d/big.bin | cut -d' ' -f1); c1=$(cached)
echo "big-dax-sum: $s"
sync; echo 3 >/proc/sys/vm/drop_caches
c2=$(cached); s=$(sha256sum /mnt/n/big.bin | cut -d' ' -f1); c3=$(cached)
echo "big-nodax-sum: $s"
echo "cached-dax-kb: $((c1 - c0))"
echo "cached-nodax-kb: $((c3 - c2))"
EOF
)

probe_bin=$base/daxprobe
if gcc -static -O2 -Wall -Wextra -Werror -o "$probe_bin" "$here/daxprobe.c" 2>"$base/gcc"; then
	ok "daxprobe builds"
else
	nok "daxprobe builds: $(head -c 500 "$base/gcc")"
fi

for t in pci mmio; do
	echo "# $t"
	share=$root/$t/share scratch=$root/$t/scratch
	mkdir -p "$share" "$scratch"
	cp "$probe_bin" "$share/daxprobe"
	head -c $((3 * 1048576 + 123)) /dev/urandom >"$share/hello.bin"
	head -c $((48 * 1048576)) /dev/urandom >"$share/big.bin"
	head -c 12288 /dev/zero >"$share/mw.bin"
	head -c 65536 /dev/urandom >"$share/src.bin"
	head -c 65536 /dev/zero >"$share/into.bin"
	mwtext="written by the $t guest through DAX $$"

	# The host's side of the mmap-write check: once the guest has msync'ed (mw.done), read
	# the bytes while its mapping is still live, then let it go on (mw.seen).
	(
		i=0
		while [ ! -e "$share/mw.done" ] && [ $i -lt 3000 ]; do sleep 0.2; i=$((i + 1)); done
		dd if="$share/mw.bin" bs=1 skip=4101 count=${#mwtext} 2>/dev/null >"$scratch/mw.host"
		: >"$share/mw.seen"
	) &
	bg=$!
	start=$(date +%s)
	out=$(vm --transport "$t" --mem 512M --share "tag=d,path=$share,dax=16M" \
		--share "tag=n,path=$share" -- sh -c "MWTEXT='$mwtext'; $probe" 2>"$scratch/err"); rc=$?
	echo "# $t: guest ran for $(($(date +%s) - start))s (status $rc)"
	kill "$bg" 2>/dev/null; wait "$bg" 2>/dev/null; bg=
	expect_eq "$t: guest ran (exit status)" 0 "$rc"
	expect_eq "$t: nothing on minivmm's stderr" "" "$(cat "$scratch/err")"
	expect_match "$t: share d mounted with DAX" "(^|,)dax=always(,|$)" "$(marker dax-mount)"
	nodax=$(marker nodax-mount)
	case $nodax in
	"") nok "$t: share n mounted" ;;
	*dax*) nok "$t: share n (no window) mounted without DAX: [$nodax]" ;;
	*) ok "$t: share n (no window) mounted without DAX" ;;
	esac
	expect_eq "$t: guest reads the host's file through DAX (sha256)" "$(sum "$share/hello.bin")" "$(marker hello-sum)"
	expect_eq "$t: guest msync'ed an mmap write" yes "$(printf '%s\n' "$out" | grep -q '^daxprobe: mmapwrite ok$' && echo yes)"
	expect_eq "$t: host saw the mmap write while the mapping was live" "$mwtext" "$(cat "$scratch/mw.host" 2>&1)"
	expect_eq "$t: host: mw.bin has the write and nothing else changed" \
		"$( (head -c 4101 /dev/zero; printf '%s' "$mwtext"; head -c $((12288 - 4101 - ${#mwtext})) /dev/zero) | sha256sum | cut -d' ' -f1)" \
		"$(sum "$share/mw.bin")"
	expect_eq "$t: read(O_DIRECT) into a DAX mapping (reply buffer in the window)" \
		"daxprobe: readinto 65536" "$(printf '%s\n' "$out" | grep '^daxprobe: readinto' | head -n 1)"
	expect_eq "$t: host: into.bin now holds src.bin" "$(sum "$share/src.bin")" "$(sum "$share/into.bin")"
	expect_eq "$t: write(O_DIRECT) from a DAX mapping (payload in the window)" \
		"daxprobe: writefrom 65536" "$(printf '%s\n' "$out" | grep '^daxprobe: writefrom' | head -n 1)"
	expect_eq "$t: host: out.bin is hello.bin's first 64 KiB" \
		"$(head -c 65536 "$share/hello.bin" | sha256sum | cut -d' ' -f1)" "$(sum "$share/out.bin" 2>/dev/null)"
	big=$(sum "$share/big.bin")
	expect_eq "$t: 48 MiB file through a 16 MiB window read completely (sha256)" "$big" "$(marker big-dax-sum)"
	expect_eq "$t: the same file without DAX (sha256)" "$big" "$(marker big-nodax-sum)"
	cd_kb=$(marker cached-dax-kb) cn_kb=$(marker cached-nodax-kb)
	echo "# $t: guest page cache grew by ${cd_kb:-?} KiB with DAX, ${cn_kb:-?} KiB without"
	if [ -n "$cd_kb" ] && [ -n "$cn_kb" ] && [ "$cn_kb" -ge $((40 * 1024)) ] &&
		[ $((cd_kb * 10)) -le "$cn_kb" ]; then
		ok "$t: page cache: DAX read grew Cached by at most a tenth of the non-DAX read"
	else
		nok "$t: page cache: DAX ${cd_kb:-?} KiB vs non-DAX ${cn_kb:-?} KiB (want non-DAX >= 40 MiB, DAX <= a tenth)"
	fi
	printf '%s\n' "$out" | grep -v '^ok - ' | indent

	# The host truncates a file under a live mapping; the guest touches the lost page.
	head -c $((4 * 1048576)) /dev/urandom >"$share/trunc.bin"
	rm -f "$share/t.ready" "$share/t.go"
	(
		i=0
		while [ ! -e "$share/t.ready" ] && [ $i -lt 3000 ]; do sleep 0.2; i=$((i + 1)); done
		truncate -s 4096 "$share/trunc.bin"
		: >"$share/t.go"
	) &
	bg=$!
	start=$(date +%s)
	out=$(vm --transport "$t" --share "tag=d,path=$share,dax=8M" -- \
		/mnt/d/daxprobe touch /mnt/d/trunc.bin 3145728 /mnt/d/t.ready /mnt/d/t.go 2>"$scratch/err"); rc=$?
	echo "# $t: truncation guest ran for $(($(date +%s) - start))s (status $rc)"
	kill "$bg" 2>/dev/null; wait "$bg" 2>/dev/null; bg=
	expect_eq "$t: truncated mapping: exit status 122" 122 "$rc"
	err=$(cat "$scratch/err")
	expect_eq "$t: truncated mapping: one line on stderr" 1 "$(printf '%s\n' "$err" | grep -c .)"
	expect_match "$t: truncated mapping: the line says why" \
		"^minivmm: guest accessed a DAX mapping of a host file past its end \(file truncated on the host\?\)" "$err"
	expect_eq "$t: truncated mapping: the guest read the page before" 2 \
		"$(printf '%s\n' "$out" | grep -c -e '^daxprobe: byte 0x' -e '^daxprobe: touching again')"
	expect_eq "$t: truncated mapping: the guest never got past the lost page" "" \
		"$(printf '%s\n' "$out" | sed -n '/touching again/,$p' | grep '^daxprobe: byte')"
	printf '%s\n' "$out" | indent
	[ -n "$err" ] && printf '%s\n' "$err" | sed 's/^/    stderr: /'
done

# Bad dax= values: exit 1, one line, no guest.
echo "# bad dax="
bad() {
	local name=$1 pat=$2; shift 2
	timeout 120 "$M" --kernel "$K" --initrd "$G" "$@" -- true >"$base/out" 2>"$base/err" </dev/null
	local rc=$? lines
	lines=$(wc -l <"$base/err")
	if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -s "$base/out" ] && grep -Eq -- "$pat" "$base/err"; then
		ok "$name"
	else
		nok "$name: rc=$rc, $lines stderr lines: $(head -c 300 "$base/err")"
	fi
}
bad "--share dax=3M (not whole 2 MiB ranges)" "dax must be a multiple of 2M" --share "tag=t,path=$base,dax=3M"
bad "--share dax=1M (under 2 MiB)" "dax must be a multiple of 2M" --share "tag=t,path=$base,dax=1M"
bad "--share dax=17G (too large)" "to 16G" --share "tag=t,path=$base,dax=17G"
bad "--share dax=big (not a size)" "dax must be a size" --share "tag=t,path=$base,dax=big"
finish
