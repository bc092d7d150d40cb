#!/bin/bash
# Bad user input: one line on stderr naming the problem, exit status 1, no guest started.
# Runs anywhere, with or without KVM: none of these reach /dev/kvm.
# Usage: tests/e2e/cli.sh MINIVMM [KERNEL]
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1")
K=${2:-$(ls /boot/vmlinuz-* | sort -V | tail -n1)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

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

# /dev/kvm missing: a private mount namespace hides it (needs root to set up).  The checks
# that need a working /dev/kvm (KVM's vCPU limit, /dev/kvm not permitted) are in
# clikvm.sh, which runs where KVM is (inside the emulated host when this machine has none).
if [ "$(id -u)" = 0 ]; then
	out=$(unshare -m sh -c 'mount -t tmpfs none /dev && exec "$@"' sh "$M" --kernel "$K" 2>&1 >/dev/null); rc=$?
	expect_eq "no /dev/kvm: status" 1 "$rc"
	expect_match "no /dev/kvm: message" "^minivmm: cannot open /dev/kvm: no such device" "$out"
fi

out=$("$M" --help); rc=$?
expect_eq "--help exits 0" 0 "$rc"
expect_match "--help shows usage" "^usage: minivmm --kernel" "$out"
expect_match "--help documents dax=" "dax=SIZE" "$out"
expect_match "--help documents exit status 122" "122 the guest touched a DAX mapping" "$out"
expect_match "--help documents --sandbox" "--sandbox on\\|none" "$out"
bad "--share: dax not whole 2 MiB ranges" "dax must be a multiple of 2M" --kernel "$K" --share tag=t,path=/tmp,dax=5M
bad "--share: bad devices value" "devices must be mapped, host or deny" --kernel "$K" --share tag=t,path=/tmp,devices=some
bad "--share: empty devices value" "devices must be mapped, host or deny" --kernel "$K" --share tag=t,path=/tmp,devices=
bad "--share: bad owner value" "owner must be host or mapped" --kernel "$K" --share tag=t,path=/tmp,owner=guest
# devices=host makes real device nodes: refused at start-up without CAP_MKNOD.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	out=$(setpriv --inh-caps=-mknod --bounding-set=-mknod "$M" --kernel "$K" \
		--share tag=t,path=/tmp,devices=host -- true 2>&1 >/dev/null); rc=$?
	expect_eq "devices=host without CAP_MKNOD: status" 1 "$rc"
	expect_match "devices=host without CAP_MKNOD: message" \
		"^minivmm: --share '[^']*': devices=host needs CAP_MKNOD" "$out"
	expect_eq "devices=host without CAP_MKNOD: one line" 1 "$(printf '%s\n' "$out" | wc -l)"
fi
expect_match "--version" "^minivmm [0-9]+\.[0-9]+\.[0-9]+$" "$("$M" --version)"
finish
