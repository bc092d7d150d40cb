#!/bin/bash
# Bad user input: one line on stderr naming the problem, exit status 1, no guest started.
# Usage: tests/e2e/cli.sh MINIVMM [KERNEL]
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1")
K=${2:-$(ls /boot/vmlinuz-* | sort -V | tail -n1)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# bad NAME PATTERN ARGS... : exit 1, exactly one stderr line matching PATTERN, no stdout.
bad() {
	local name=$1 pat=$2; shift 2
	"$M" "$@" >"$T/out" 2>"$T/err" </dev/null
	local rc=$? lines
	lines=$(wc -l <"$T/err")
	if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -s "$T/out" ] && grep -Eq -- "$pat" "$T/err"; then
		ok "$name"
	else
		nok "$name: rc=$rc, $lines stderr lines: $(head -c 300 "$T/err")"
	fi
}

head -c 300000 "$K" >"$T/truncated"
printf 'hello\n' >"$T/short"
yes 'not a kernel' | head -c 8192 >"$T/text"
# A bzImage header claiming boot protocol 2.01.
cp "$T/truncated" "$T/old" && printf '\001\002' | dd of="$T/old" bs=1 seek=$((0x206)) conv=notrunc 2>/dev/null
: >"$T/empty"
head -c $((400 << 20)) /dev/zero >"$T/big.img" 2>/dev/null

bad "no kernel"                 "no kernel given"
bad "missing kernel"            "cannot open kernel '/nonexistent'.*No such file" --kernel /nonexistent
bad "kernel is a directory"     "kernel '/tmp' is not a regular file" --kernel /tmp
bad "empty kernel"              "kernel .* is empty" --kernel "$T/empty"
bad "not a bzImage"             "not a bzImage: bad magic" --kernel "$T/text"
bad "too short"                 "not a bzImage: .*too short" --kernel "$T/short"
bad "truncated bzImage"         "truncated bzImage: 300000 bytes" --kernel "$T/truncated"
bad "protocol too old"          "boot protocol 2.01 is too old" --kernel "$T/old"
# A bzImage whose compressed kernel is damaged is refused before the guest starts
# (booting it would end in the guest's decompressor halting the CPU).
cp "$K" "$T/corrupt"
size=$(stat -c %s "$K")
head -c 4096 /dev/urandom | dd of="$T/corrupt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
bad "corrupt compressed kernel"  "its compressed payload is corrupt" --kernel "$T/corrupt"
bad "missing initrd"            "cannot open initrd '/nonexistent'" --kernel "$K" --initrd /nonexistent
bad "unparsable --mem"          "--mem 'lots' is not a size" --kernel "$K" --mem lots
bad "--mem too small"           "--mem 8M is too small" --kernel "$K" --mem 8M
bad "--mem too large"           "--mem 100T is more than this host" --kernel "$K" --mem 100T
bad "--mem too small for kernel" "too small for this kernel" --kernel "$K" --mem 40M
bad "--cpus 0"                  "--cpus '0' must be a whole number" --kernel "$K" --cpus 0
bad "--cpus junk"               "--cpus 'two' must be" --kernel "$K" --cpus two
bad "--cpus above KVM's limit"  "--cpus 100000 is more than this KVM allows" --kernel "$K" --cpus 100000
bad "unknown transport"         "--transport 'usb' is not a transport \\(pci or mmio\\)" --kernel "$K" --transport usb
bad "unknown sandbox mode"      "--sandbox 'off' is not a sandbox mode \\(on or none\\)" --kernel "$K" --sandbox off
bad "--share: missing directory"  "--share path '/nonexistent': No such file or directory" --kernel "$K" --share tag=t,path=/nonexistent
bad "--share: not a directory"  "--share path '/etc/passwd' is not a directory" --kernel "$K" --share tag=t,path=/etc/passwd
bad "--share: duplicate tag"    "--share: tag 't' is used twice" --kernel "$K" --share tag=t,path=/tmp --share tag=t,path=/
bad "--share: tag over 36 bytes" "tag must be 1 to 36 bytes" --kernel "$K" --share tag=abcdefghijklmnopqrstuvwxyz0123456789X,path=/tmp
bad "--share: unknown key"      "unknown key 'mode'" --kernel "$K" --share tag=t,path=/tmp,mode=fast
bad "--share: no path"          "no path= given" --kernel "$K" --share tag=t
bad "unknown option"            "unknown option '--frobnicate'" --kernel "$K" --frobnicate
bad "option without value"      "option '--mem' needs a value" --kernel "$K" --mem
bad "stray argument"            "unexpected argument 'oops'" --kernel "$K" oops
bad "nothing after --"          "nothing after --" --kernel "$K" --
bad "initrd does not fit"       "initrd of 400 MiB does not fit" --kernel "$K" --initrd "$T/big.img" --mem 256M

# /dev/kvm missing or not permitted: a private mount namespace hides it, an unprivileged
# user cannot open it.  Both need root to set up.
if [ "$(id -u)" = 0 ]; then
	bad_ns() {
		unshare -m sh -c 'mount -t tmpfs none /dev && exec "$@"' sh "$@"
	}
	out=$(bad_ns "$M" --kernel "$K" 2>&1 >/dev/null); rc=$?
	expect_eq "no /dev/kvm: status" 1 "$rc"
	expect_match "no /dev/kvm: message" "^minivmm: cannot open /dev/kvm: no such device" "$out"
	chmod 0755 "$T"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$M" --kernel "$K" 2>&1 >/dev/null); rc=$?
	expect_eq "/dev/kvm not permitted: status" 1 "$rc"
	expect_match "/dev/kvm not permitted: message" "cannot open /dev/kvm: permission denied" "$out"
fi

out=$("$M" --help); rc=$?
expect_eq "--help exits 0" 0 "$rc"
expect_match "--help shows usage" "^usage: minivmm --kernel" "$out"
expect_match "--help documents dax=" "dax=SIZE" "$out"
expect_match "--help documents exit status 122" "122 the guest touched a DAX mapping" "$out"
expect_match "--help documents --sandbox" "--sandbox on\\|none" "$out"
bad "--share: dax not whole 2 MiB ranges" "dax must be a multiple of 2M" --kernel "$K" --share tag=t,path=/tmp,dax=5M
expect_match "--version" "^minivmm [0-9]+\.[0-9]+\.[0-9]+$" "$("$M" --version)"
finish
