# Shared helpers for building initramfs images: sourced (not run) by
# guest/mkinitrd and tools/emuhost.  POSIX sh, so both /bin/sh and bash users
# can source it.  Every function reports its own errors on stderr, prefixed
# with the calling program's name, and returns non-zero; callers decide
# whether to exit.

# Program name used in messages; callers may set IRFS_PROG before sourcing.
: "${IRFS_PROG:=${0##*/}}"

irfs_err() {
	printf '%s: %s\n' "$IRFS_PROG" "$*" >&2
}

# Newest kernel version that has a /boot/vmlinuz-*: what a user most likely
# wants to run.  sort -V so that 6.10 sorts after 6.9.
irfs_newest_kver() {
	# shellcheck disable=SC2012  # kernel file names are plain words
	_k=$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1)
	if [ -z "$_k" ]; then
		irfs_err "no kernel found (/boot/vmlinuz-*); install linux-image-amd64 or pass a kernel"
		return 1
	fi
	printf '%s\n' "$_k"
}

# Kernel version of a bzImage.  The file name (vmlinuz-VERSION) is the cheap
# answer; for other names read the version string the boot protocol points
# at: a 16-bit offset at 0x20e, relative to 0x200, and the version is the
# first word of that NUL-terminated string.
irfs_kver_of_image() {
	case ${1##*/} in
	vmlinuz-?*) printf '%s\n' "${1##*/vmlinuz-}"; return 0 ;;
	esac
	_off=$(od -An -tu2 -j 526 -N 2 "$1" 2>/dev/null | tr -d ' ')
	_k=
	[ -n "$_off" ] && _k=$(dd if="$1" bs=1 skip=$((_off + 512)) count=128 2>/dev/null |
		tr '\0' '\n' | head -n 1 | cut -d ' ' -f 1)
	if [ -z "$_k" ]; then
		irfs_err "cannot tell the kernel version of $1 (not a bzImage?)"
		return 1
	fi
	printf '%s\n' "$_k"
}

# Unpack the kernel ELF (vmlinux) that a bzImage carries compressed, into
# OUT.  QEMU can boot that ELF directly through its PVH entry point, which
# skips the decompressor: under software emulation, decompressing the
# kernel takes several seconds, more than the rest of the boot.  The boot
# protocol header says where the payload is: setup_sects at 0x1f1, the
# payload offset and length at 0x248/0x24c; its last 4 bytes are the
# uncompressed size, which we check the result against.
irfs_extract_vmlinux() {
	_img=$1 _out=$2
	_irfs_u() { od -An -t"u$2" -j "$1" -N "$2" "$_img" 2>/dev/null | tr -d ' '; }
	_setup=$(_irfs_u 497 1) _poff=$(_irfs_u 584 4) _plen=$(_irfs_u 588 4)
	if [ -z "$_plen" ] || [ "$_plen" = 0 ]; then
		irfs_err "$_img: not a bzImage"
		return 1
	fi
	[ "$_setup" = 0 ] && _setup=4   # boot protocol: 0 means 4
	_start=$(( (_setup + 1) * 512 + _poff ))
	case $(od -An -tx1 -j "$_start" -N 4 "$_img" 2>/dev/null | tr -d ' ') in
	fd377a58) _dec='xz -dcq' ;;
	1f8b*) _dec='gzip -dcq' ;;
	28b52ffd) _dec='zstd -dcq' ;;
	5d00*) _dec='xz -dcq --format=lzma' ;;
	425a68*) _dec='bzip2 -dcq' ;;
	02214c18) _dec='lz4 -dcq' ;;
	*) irfs_err "$_img: unknown kernel compression"; return 1 ;;
	esac
	# The decompressor's status is not trusted either way: the appended
	# size looks like trailing garbage to some of them.  The size check is.
	tail -c +$((_start + 1)) "$_img" | head -c "$_plen" | $_dec >"$_out.tmp.$$" 2>/dev/null
	_want=$(_irfs_u $((_start + _plen - 4)) 4)
	if [ "$(wc -c <"$_out.tmp.$$")" != "$_want" ] ||
		[ "$(od -An -tx1 -N 4 "$_out.tmp.$$" | tr -d ' ')" != 7f454c46 ]; then
		rm -f "$_out.tmp.$$"
		irfs_err "cannot unpack $_img (is '${_dec%% *}' installed?)"
		return 1
	fi
	mv -f "$_out.tmp.$$" "$_out"
}

# Print, one per line, the .ko files to insmod (in that order) so that the
# modules NAME... are loaded on kernel KVER.  modprobe already knows the
# dependency order; we only merge the per-module lists without duplicates.
# -C /dev/null: this machine's modprobe.d (blacklists, options, install
# hooks) describes this machine, not the image we are building.
irfs_resolve_modules() {
	_kver=$1; shift
	if [ ! -d "/lib/modules/$_kver" ]; then
		irfs_err "no modules for kernel $_kver (/lib/modules/$_kver is missing)"
		return 1
	fi
	# Non-root users often lack /sbin and /usr/sbin in PATH.
	_mp=$(PATH=$PATH:/usr/sbin:/sbin command -v modprobe) || {
		irfs_err "modprobe not found; install kmod"
		return 1
	}
	_seen='
'
	for _name in "$@"; do
		if ! _deps=$("$_mp" -C /dev/null -S "$_kver" --show-depends "$_name" 2>/dev/null); then
			irfs_err "kernel module '$_name' not found for kernel $_kver"
			return 1
		fi
		# Fields: "insmod PATH [options]" or "builtin NAME" (nothing to load).
		_paths=$(printf '%s\n' "$_deps" | awk '$1 == "insmod" { print $2 }')
		for _p in $_paths; do
			case $_seen in *"
$_p
"*) continue ;; esac
			_seen="$_seen$_p
"
			printf '%s\n' "$_p"
		done
	done
}

# Copy the modules NAME... of kernel KVER and their dependencies into the
# staging tree ROOT, and write ROOT/etc/modules: their in-image paths in load
# order.  Compressed modules are stored decompressed because busybox insmod
# may not be built with the matching decompressor.
irfs_add_modules() {
	_kver=$1 _root=$2; shift 2
	_list=$(irfs_resolve_modules "$_kver" "$@") || return 1
	mkdir -p "$_root/etc" || return 1
	: >"$_root/etc/modules" || return 1
	for _src in $_list; do
		_rel=${_src#/lib/modules/"$_kver"/}
		case $_rel in
		*.ko.xz) _dec='xz -dc' _rel=${_rel%.xz} ;;
		*.ko.zst) _dec='zstd -dcq' _rel=${_rel%.zst} ;;
		*.ko.gz) _dec='gzip -dc' _rel=${_rel%.gz} ;;
		*) _dec='cat' ;;
		esac
		_dst=$_root/lib/modules/$_kver/$_rel
		mkdir -p "${_dst%/*}" || return 1
		if ! $_dec <"$_src" >"$_dst"; then
			irfs_err "cannot copy/decompress $_src (is '${_dec%% *}' installed?)"
			return 1
		fi
		printf '%s\n' "/lib/modules/$_kver/$_rel" >>"$_root/etc/modules"
	done
}

# Put a static busybox at ROOT/bin/busybox with a symlink for every applet
# at its usual place.  Links are made here, at build time, so that /init can
# use plain command names from its first line and boot does no extra work.
irfs_add_busybox() {
	_root=$1
	_bb=${BUSYBOX:-$(command -v busybox || echo /bin/busybox)}
	if [ ! -x "$_bb" ]; then
		irfs_err "busybox not found; install busybox-static"
		return 1
	fi
	# The image has no C library: a dynamically linked busybox would not run.
	# ldd fails on static executables, succeeds on dynamic ones.
	if ldd "$_bb" >/dev/null 2>&1; then
		irfs_err "$_bb is dynamically linked; install busybox-static"
		return 1
	fi
	mkdir -p "$_root/bin" "$_root/sbin" "$_root/usr/bin" "$_root/usr/sbin" || return 1
	cp "$_bb" "$_root/bin/busybox" || return 1
	for _app in $("$_bb" --list-full); do
		[ -e "$_root/$_app" ] || [ -L "$_root/$_app" ] || ln -s /bin/busybox "$_root/$_app"
	done
}

# Pack the tree DIR into OUT as an uncompressed newc cpio (what the kernel
# and minivmm read directly).  Sorted names, root ownership and a fixed mtime
# make the bytes depend only on the contents.  Written to a temporary file
# beside OUT and renamed, so a reader never sees a half-written image and
# concurrent builders do not corrupt each other.
irfs_pack() {
	_dir=$1 _out=$2
	mkdir -p "$(dirname "$_out")" || return 1
	_tmp=$_out.tmp.$$
	chmod 755 "$_dir" && find "$_dir" -exec touch -h -d @0 {} + || return 1
	if ! (cd "$_dir" && find . -print0 | LC_ALL=C sort -z |
		cpio --quiet -o -0 -H newc -R 0:0 --reproducible) >"$_tmp"; then
		rm -f "$_tmp"
		irfs_err "cannot write $_out"
		return 1
	fi
	mv -f "$_tmp" "$_out"
}
