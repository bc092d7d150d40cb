# Shared by the benchmarks: run the guest image with a command under minivmm or QEMU, so
# both boot the same kernel and the same image and measure the same way.
# QEMU gets the command through the same appended cpio archive minivmm builds, and its
# status through isa-debug-exit on the port the guest image writes (0xf4).

# qemu_initrd GUEST_IMAGE OUT CMD...: the guest image plus /minivmm/cmd running CMD.
qemu_initrd() {
	local img=$1 out=$2 dir q
	shift 2
	dir=$(mktemp -d)
	mkdir "$dir/minivmm"
	q=$(printf "'%s' " "${@//\'/\'\\\'\'}")
	printf 'exec %s\n' "$q" >"$dir/minivmm/cmd"
	: >"$dir/minivmm/raw"
	cp "$img" "$out"
	# newc archives must start 4-byte aligned when concatenated.
	truncate -s $(( ($(stat -c %s "$out") + 3) / 4 * 4 )) "$out"
	(cd "$dir" && find minivmm | cpio -o -H newc --quiet) >>"$out"
	rm -rf "$dir"
}

# run_qemu MACHINE DEVICE KERNEL GUEST_IMAGE CMD...: MACHINE is "pc" or "microvm".
run_qemu() {
	local machine=$1 dev=$2 k=$3 g=$4 img
	shift 4
	img=$(mktemp)
	qemu_initrd "$g" "$img" "$@"
	local m=(-M pc) append="console=ttyS0 reboot=k panic=-1 quiet loglevel=1"
	if [ "$machine" = microvm ]; then
		m=(-M microvm,acpi=on,rtc=off,pit=on,pic=on)
	fi
	qemu-system-x86_64 "${m[@]}" -accel kvm -cpu host -m 512 -smp 1 -nodefaults -no-reboot \
		-display none -serial stdio -kernel "$k" -initrd "$img" -append "$append" \
		-device isa-debug-exit,iobase=0xf4,iosize=1 -device "$dev" </dev/null
	rm -f "$img"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
