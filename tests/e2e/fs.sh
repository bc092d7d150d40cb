#!/bin/bash
# End-to-end: virtio-fs shares (--share) on each transport, checked from both sides.
# The guest runs tests/e2e/fsprobe (built static into the share) for POSIX semantics, reads
# host fixtures, tries to leave the share through symlinks and "..", and waits for a change
# the host makes; the host then checks, file by file, what the guest left behind (contents,
# modes, owners, times, links, xattrs), that nothing outside the share changed, that a
# read-only share stays unchanged, that guest-made device nodes are inert files on the host
# (devices=mapped, the default), real ones with devices=host and refused with devices=deny,
# and that bad --share options are refused.
# Usage: tests/e2e/fs.sh MINIVMM KERNEL GUEST_IMAGE
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1") K=$2 G=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# Under the repository's build/ (other jobs clean /tmp; the emulated host shares the
# repository with its own host, so the files are real).
mkdir -p "$repo/build"
base=$(mktemp -d "$repo/build/fs-e2e.XXXXXX") || exit 1
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

# Where the shares live.  Under the emulated host (tools/emuhost) build/ is 9p, which is no
# file system anyone shares: it has no RENAME_EXCHANGE or RENAME_NOREPLACE, stores an empty
# xattr as a removal, and resolves open files by path (unlinking one hard link breaks the
# server's handle on the other), so checks would fail for 9p's reasons, not minivmm's.
# There, share an ext4 image (in the emulated host's memory) mounted under $base instead.
# FS_E2E_PLAIN=1 keeps the shares in $base whatever it is.
root=$base
fstype() { df --output=fstype "$1" | tail -n 1; }   # stat -f sees through 9p
if [ "$(fstype "$base")" = 9p ] && [ -z "${FS_E2E_PLAIN:-}" ]; then
	modprobe -q loop 2>/dev/null; modprobe -q ext4 2>/dev/null
	img=$(mktemp "${TMPDIR:-/tmp}/fs-e2e.XXXXXX.img") &&
	truncate -s 1G "$img" && mkfs.ext4 -q -F "$img" && mkdir "$base/ext4" &&
	mount -o loop "$img" "$base/ext4" && root=$base/ext4
	if [ "$root" = "$base" ]; then
		nok "shares on ext4: cannot mount an ext4 image on $base/ext4 (build/ is 9p here)"
	fi
fi
echo "# shares on $(fstype "$root") under $root"
VM_TIMEOUT=${FS_E2E_TIMEOUT:-1500}   # seconds per guest; a hung FUSE request must not hang us
vm() { timeout "$VM_TIMEOUT" "$M" --kernel "$K" --initrd "$G" "$@" </dev/null; }
indent() { sed 's/^/    /'; }
# Contents of a file as a string, or "<missing>".
content() { if [ -e "$1" ]; then cat "$1"; else echo "<missing>"; fi; }
# The value of the guest's marker line "NAME: value" in $out.
marker() { printf '%s\n' "$out" | sed -n "s/^$1: //p" | head -n 1; }

# Reading extended attributes on the host: getfattr (package attr) or Python.
if command -v getfattr >/dev/null 2>&1; then
	xattr_tool=getfattr
	xget() { getfattr --absolute-names --only-values -n "$2" -- "$1" 2>&1; }
	xlist() { getfattr -d -m - --absolute-names -- "$1" 2>&1 | sed -n 's/=.*//p'; }
elif command -v python3 >/dev/null 2>&1; then
	xattr_tool=python3
	xget() { python3 -c 'import os, sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$1" "$2" 2>&1; }
	xlist() { python3 -c 'import os, sys; print("\n".join(os.listxattr(sys.argv[1])))' "$1" 2>&1; }
else
	xattr_tool=
fi

# Where minivmm keeps a mapped device node (fs/node.c): it runs as this user.
node_attr=user.minivmm.node
[ "$(id -u)" = 0 ] && node_attr=trusted.minivmm.node

# What the guest runs on the main share: fsprobe, host fixtures, escape attempts, then a
# host-side change it must see (cache=auto).  One "NAME: value" marker per fact.
probe=$(cat <<'EOF'
grep -q "^t /mnt/t virtiofs " /proc/mounts && echo "mounted: yes" || echo "mounted: no"
/mnt/t/fsprobe /mnt/t/work; echo "fsprobe-rc: $?"
orig=$(cat /mnt/t/host.txt)
echo "host.txt: $orig"
echo "host.txt-mode: $(stat -c %a /mnt/t/host.txt)"
cat /mnt/t/to_outside/secret.txt; echo "esc-cat-secret-rc: $?"
o=$(ls -la /mnt/t/to_outside/ 2>&1); rc=$?
echo "esc-ls-outside: rc=$rc $(echo "$o" | tr "\n" " ")"
echo "esc-ls-root: $(ls /mnt/t/to_root/ | tr "\n" " ")"
echo "guest-root: $(ls / | tr "\n" " ")"
echo "esc-dotdot: $(cat /mnt/t/../t/host.txt)"
echo "esc-ls-dotdot: $(ls /mnt/t/.. | tr "\n" " ")"
echo "to_outside-link: $(readlink /mnt/t/to_outside)"
echo "to_outside-type: $(stat -c %F /mnt/t/to_outside)"
chown -h 4321:4321 /mnt/t/to_outside; echo "lchown-rc: $?"
orig2=$(cat /mnt/t/host2.txt)
: >/mnt/t/ready
# Empty is the instant between the host's truncation and its write: not the change yet.
i=0 new=$orig new2=$orig2
while [ $i -lt 30 ]; do
	new=$(cat /mnt/t/host.txt)
	new2=$(cat /mnt/t/host2.txt)
	[ -n "$new" ] && [ "$new" != "$orig" ] && [ -n "$new2" ] && [ "$new2" != "$orig2" ] && break
	sleep 1
	i=$((i + 1))
done
echo "host-change: $new"
echo "host-change-renamed: $new2"
echo "host-change-polls: $i"
EOF
)

tag36=abcdefghijklmnopqrstuvwxyz0123456789   # exactly 36 bytes: the config field, no NUL
# The read-only share: every modification must fail with EROFS; reads work.  Plus a share
# whose tag fills the 36-byte config field.
roprobe=$(cat <<EOF
grep -q "^r /mnt/r virtiofs " /proc/mounts && echo "mounted: yes" || echo "mounted: no"
try() { name=\$1; shift; o=\$( ("\$@") 2>&1 ); rc=\$?; echo "\$name: rc=\$rc \$(echo "\$o" | tr "\n" " ")"; }
try ro-create sh -c 'echo x > /mnt/r/new'
try ro-rm rm /mnt/r/host.txt
try ro-mkdir mkdir /mnt/r/d
try ro-append sh -c 'echo y >> /mnt/r/host.txt'
try ro-chmod chmod 600 /mnt/r/host.txt
try ro-chown chown 1:1 /mnt/r/host.txt
try ro-touch touch /mnt/r/host.txt
try ro-rename mv /mnt/r/host.txt /mnt/r/moved.txt
try ro-symlink ln -s host.txt /mnt/r/sl
try ro-link ln /mnt/r/host.txt /mnt/r/hl
try ro-rmdir rmdir /mnt/r/empty
try ro-mkfifo mkfifo /mnt/r/fifo
try ro-truncate truncate -s 0 /mnt/r/host.txt
echo "ro-read: \$(cat /mnt/r/host.txt)"
echo "ro-ls: \$(ls /mnt/r | tr "\n" " ")"
echo "tag36-mounted: \$(grep -c "^$tag36 /mnt/$tag36 virtiofs " /proc/mounts)"
echo "tag36-read: \$(cat /mnt/$tag36/tagfile)"
try dh-mknod-c mknod /mnt/dh/c c 1 3
try dh-mknod-b mknod /mnt/dh/b b 7 0
echo "dh-types: \$(stat -c '%F %t:%T' /mnt/dh/c /mnt/dh/b | tr "\n" ",")"
try dd-mknod-c mknod /mnt/dd/c c 1 3
try dd-mknod-b mknod /mnt/dd/b b 7 0
try dd-mkfifo mkfifo /mnt/dd/p
EOF
)

# Everything under DIR except the share and our scratch space, with types, modes, owners,
# sizes and mtimes: what must not change while the guest runs.
snapshot() {
	find "$1" \( -path "$2" -o -path "$1/scratch" \) -prune -o -printf '%p %y %m %u:%g %s %T@ %l\n' | sort
}
snapshot_all() { find "$1" -printf '%p %y %m %u:%g %s %T@ %l\n' | sort; }
# The first lines that differ between two snapshots (no <(...): the emulated host has no
# /dev/fd).
changes() {
	printf '%s\n' "$1" >"$base/snap.a"
	printf '%s\n' "$2" >"$base/snap.b"
	diff "$base/snap.a" "$base/snap.b" | grep '^[<>]' | head -n 5 | tr '\n' '|'
}

nchecks=$(grep -c '^	run("' "$here/fsprobe.c")
for t in pci mmio; do
	echo "# $t"
	d=$root/$t share=$root/$t/share outside=$root/$t/outside ro=$root/$t/ro tagdir=$root/$t/tag36
	mkdir -p "$share" "$outside" "$ro/empty" "$tagdir" "$d/scratch"
	token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	printf 'secret %s\n' "$token" >"$outside/secret.txt"
	host_text="host content $t $$"
	printf '%s\n' "$host_text" >"$share/host.txt"
	printf 'second host file %s\n' "$t" >"$share/host2.txt"
	ln -s / "$share/to_root"
	ln -s "$outside" "$share/to_outside"
	if gcc -static -O2 -Wall -Wextra -Werror -o "$share/fsprobe" "$here/fsprobe.c" 2>"$d/scratch/gcc"; then
		ok "$t: fsprobe builds"
	else
		nok "$t: fsprobe builds: $(head -c 500 "$d/scratch/gcc")"
	fi
	before=$(snapshot "$d" "$share")

	# The host's side of the change test: once the guest says it is ready, rewrite host.txt
	# in place (same inode: the guest's cached pages must go) and replace host2.txt by a
	# rename (a new inode behind the same name).
	changed="changed by the host $t $(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')"
	changed2="replaced by the host $t $(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')"
	(
		while [ ! -e "$share/ready" ]; do sleep 0.2; done
		printf '%s\n' "$changed" >"$share/host.txt"
		printf '%s\n' "$changed2" >"$d/scratch/host2.txt"
		mv "$d/scratch/host2.txt" "$share/host2.txt"
		echo rewritten >"$d/scratch/bg"
	) &
	bg=$!

	start=$(date +%s)
	out=$(vm --transport "$t" --share "tag=t,path=$share,cache=auto" -- sh -c "$probe" 2>"$d/scratch/err"); rc=$?
	secs=$(($(date +%s) - start))
	kill "$bg" 2>/dev/null; wait "$bg" 2>/dev/null; bg=
	echo "# $t: main guest ran for ${secs}s (status $rc)"
	expect_eq "$t: guest ran (exit status)" 0 "$rc"
	err=$(cat "$d/scratch/err")
	expect_eq "$t: nothing on minivmm's stderr" "" "$err"
	expect_eq "$t: share mounted at /mnt/t" yes "$(marker mounted)"

	# fsprobe's own checks, passed through; then that it got through all of them (a crash or
	# a hang shows as a short count) and that its status agrees with its lines.
	n=0 nfail=0
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "$t: ${line#ok - }"; n=$((n + 1)) ;;
		"not ok - "*) nok "$t: ${line#not ok - }"; n=$((n + 1)) nfail=$((nfail + 1)) ;;
		esac
	done <<<"$out"
	fsrc=$(marker fsprobe-rc)
	want_rc=0
	[ $nfail -gt 0 ] && want_rc=1
	if [ "$n" -eq "$nchecks" ] && [ "$fsrc" = $want_rc ]; then
		ok "$t: fsprobe ran to the end ($n checks, status $fsrc)"
	else
		nok "$t: fsprobe ran to the end: status [$fsrc], $n of $nchecks checks ($nfail failed); last lines: $(printf '%s\n' "$out" | grep -E '^(not )?ok - ' | tail -n 2 | tr '\n' '|')"
	fi

	# The guest reads what the host put there, and cannot leave the share.
	expect_eq "$t: guest reads host.txt" "$host_text" "$(marker host.txt)"
	expect_eq "$t: guest sees host.txt's mode" 644 "$(marker host.txt-mode)"
	case "$out$err" in
	*"$token"*) nok "$t: the outside secret never appears in the guest's output" ;;
	*) ok "$t: the outside secret never appears in the guest's output" ;;
	esac
	expect_match "$t: cat to_outside/secret.txt fails" "^[1-9][0-9]*$" "$(marker esc-cat-secret-rc)"
	ls_out=$(marker esc-ls-outside)
	expect_match "$t: ls -la to_outside/ fails" "^rc=[1-9]" "$ls_out"
	case $ls_out in
	*secret*) nok "$t: ls -la to_outside/ lists nothing of the outside dir: [$ls_out]" ;;
	*) ok "$t: ls -la to_outside/ lists nothing of the outside dir" ;;
	esac
	expect_eq "$t: to_root/ is the guest's own / (resolved in the guest)" \
		"$(marker guest-root)" "$(marker esc-ls-root)"
	expect_eq "$t: /mnt/t/../t/host.txt is the guest's path" "$host_text" "$(marker esc-dotdot)"
	expect_eq "$t: /mnt/t/.. is the guest's /mnt" "t " "$(marker esc-ls-dotdot)"
	expect_eq "$t: to_outside is a symlink to the guest" "symbolic link" "$(marker to_outside-type)"
	expect_eq "$t: readlink to_outside gives the stored target" "$outside" "$(marker to_outside-link)"
	expect_eq "$t: lchown of the symlink succeeds" 0 "$(marker lchown-rc)"
	expect_eq "$t: lchown changed the link itself on the host" "4321:4321" "$(stat -c %u:%g "$share/to_outside")"

	# The host's change reaches the guest.
	expect_eq "$t: host rewrote host.txt once the guest was ready" rewritten "$(content "$d/scratch/bg")"
	expect_eq "$t: guest sees host.txt rewritten in place (cache=auto)" "$changed" "$(marker host-change)"
	expect_eq "$t: guest sees host2.txt replaced by a rename (cache=auto)" "$changed2" "$(marker host-change-renamed)"
	echo "# $t: guest saw the change after $(marker host-change-polls) 1-second polls"

	# What the guest left behind, as the host sees it.
	w=$share/work
	expect_eq "$t: host: data.txt content" "hello from the minivmm guest" "$(content "$w/data.txt")"
	if printf 'hello from the minivmm guest\n' | cmp -s - "$w/data.txt"; then
		ok "$t: host: data.txt byte-exact"
	else
		nok "$t: host: data.txt byte-exact: $(od -c "$w/data.txt" 2>&1 | head -n 3 | tr '\n' ' ')"
	fi
	expect_eq "$t: host: data.txt mode" 644 "$(stat -c %a "$w/data.txt" 2>&1)"
	expect_eq "$t: host: data.txt owned by root (the guest's uid)" "0:0" "$(stat -c %u:%g "$w/data.txt" 2>&1)"
	expect_eq "$t: host: data.txt has 2 links" 2 "$(stat -c %h "$w/data.txt" 2>&1)"
	expect_eq "$t: host: linked.txt is data.txt's inode" "$(stat -c %i "$w/data.txt" 2>&1)" "$(stat -c %i "$w/linked.txt" 2>&1)"
	expect_eq "$t: host: renamed.txt content" "renamed by the guest" "$(content "$w/renamed.txt")"
	expect_eq "$t: host: rename source is gone" "<missing>" "$(content "$w/to-rename.txt")"
	expect_eq "$t: host: sym is a symlink" "symbolic link" "$(stat -c %F "$w/sym" 2>&1)"
	expect_eq "$t: host: sym -> data.txt" "data.txt" "$(readlink "$w/sym" 2>&1)"
	expect_eq "$t: host: mode4755 mode (suid=off: no setuid)" 755 "$(stat -c %a "$w/mode4755" 2>&1)"
	expect_eq "$t: host: owned is 1234:5678" "1234:5678" "$(stat -c %u:%g "$w/owned" 2>&1)"
	expect_eq "$t: host: times mtime" 1000000000 "$(stat -c %Y "$w/times" 2>&1)"
	if [ -z "$xattr_tool" ]; then
		nok "$t: host: xattr.txt user.minivmm: neither getfattr nor python3 to read it"
	else
		expect_eq "$t: host: xattr.txt user.minivmm=hello ($xattr_tool)" hello "$(xget "$w/xattr.txt" user.minivmm)"
		expect_eq "$t: host: xattr.txt user.* names (removed one gone)" user.minivmm \
			"$(xlist "$w/xattr.txt" | grep '^user\.' | tr '\n' ' ' | sed 's/ $//')"
	fi
	mmap_cmp=$("$share/fsprobe" --pattern 2 8292 | cmp - "$w/mmap.bin" 2>&1)
	expect_eq "$t: host: mmap.bin content" "" "$mmap_cmp"
	expect_eq "$t: host: big.bin size" 8388608 "$(stat -c %s "$w/big.bin" 2>&1)"
	expect_eq "$t: host: big.bin checksum" \
		"$("$share/fsprobe" --pattern 1 8388608 | sha256sum | cut -d' ' -f1)" \
		"$(sha256sum <"$w/big.bin" 2>&1 | cut -d' ' -f1)"
	# shellcheck disable=SC2012  # our own names, f00000..f09999
	expect_eq "$t: host: many/ holds 10000 entries" 10000 "$(ls -A "$w/many" 2>&1 | wc -l)"
	expect_eq "$t: host: many/f00000 and many/f09999 are empty files" "regular empty file regular empty file" \
		"$(stat -c %F "$w/many/f00000" "$w/many/f09999" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
	expect_eq "$t: host: fifo is a FIFO" fifo "$(stat -c %F "$w/fifo" 2>&1)"
	expect_eq "$t: host: dir is a 0755 directory" "directory 755" "$(stat -c '%F %a' "$w/dir" 2>&1)"
	expect_eq "$t: host: no device node in the share" "" "$(find "$share" \( -type b -o -type c \) 2>&1)"
	# Every file type went through create/chown/chmod/rename/link/unlink and is gone; the
	# device nodes left (devices=mapped, the default) are inert 0600 files on the host with
	# the node in minivmm's attribute (trusted.* as root, user.* otherwise).
	expect_eq "$t: host: types/ is empty after the file-type cycles" "" "$(ls -A "$w/types" 2>&1)"
	for n in chr blk; do
		expect_eq "$t: host: nodes/$n is an empty 0600 regular file" "regular empty file 600" \
			"$(stat -c '%F %a' "$w/nodes/$n" 2>&1)"
	done
	expect_eq "$t: host: nodes/chr owned 1234:5678 (the guest's chown)" "1234:5678" \
		"$(stat -c %u:%g "$w/nodes/chr" 2>&1)"
	if [ -z "$xattr_tool" ]; then
		nok "$t: host: nodes/* attribute: neither getfattr nor python3 to read it"
	else
		expect_eq "$t: host: nodes/chr $node_attr ($xattr_tool)" "1 c 666 1 3" "$(xget "$w/nodes/chr" "$node_attr")"
		expect_eq "$t: host: nodes/blk $node_attr ($xattr_tool)" "1 b 660 7 0" "$(xget "$w/nodes/blk" "$node_attr")"
	fi
	missing=
	if [ -f "$w/MANIFEST" ]; then
		while read -r name _; do
			[ -e "$w/$name" ] || [ -L "$w/$name" ] || missing="$missing $name"
		done <"$w/MANIFEST"
		expect_eq "$t: host: every file in MANIFEST is there" "" "$missing"
	else
		nok "$t: host: MANIFEST is missing"
	fi
	after=$(snapshot "$d" "$share")
	if [ "$before" = "$after" ]; then
		ok "$t: host: nothing changed outside the share"
	else
		nok "$t: host: nothing changed outside the share: $(changes "$before" "$after")"
	fi
	printf '%s\n' "$out" | grep -Ev '^(not )?ok - ' | indent
	[ -n "$err" ] && printf '%s\n' "$err" | sed 's/^/    stderr: /'

	# Read-only share.
	printf 'read-only content\n' >"$ro/host.txt"
	printf 'tag36 content\n' >"$tagdir/tagfile"
	ro_before=$(snapshot_all "$ro")
	start=$(date +%s)
	# Riding along: a devices=host and a devices=deny share.
	dh=$root/$t/devhost dd=$root/$t/devdeny
	mkdir -p "$dh" "$dd"
	out=$(vm --transport "$t" --share "tag=r,path=$ro,ro" --share "tag=$tag36,path=$tagdir" \
		--share "tag=dh,path=$dh,devices=host" --share "tag=dd,path=$dd,devices=deny" \
		-- sh -c "$roprobe" 2>"$d/scratch/err"); rc=$?
	secs=$(($(date +%s) - start))
	echo "# $t: read-only guest ran for ${secs}s (status $rc)"
	expect_eq "$t: ro: guest ran (exit status)" 0 "$rc"
	# devices=host warns once at start-up unless the share is on a nodev mount.
	warn="minivmm: warning: share dh: devices=host: device nodes the guest makes are real on the host, and $dh is not on a nodev mount"
	if findmnt -n -o OPTIONS --target "$dh" 2>/dev/null | grep -qw nodev; then warn=; fi
	expect_eq "$t: ro: stderr holds only the devices=host warning" "$warn" "$(cat "$d/scratch/err")"
	expect_eq "$t: ro: share mounted" yes "$(marker mounted)"
	for op in create rm mkdir append chmod chown touch rename symlink link rmdir mkfifo truncate; do
		expect_match "$t: ro: $op fails with EROFS" "^rc=[1-9][0-9]* .*Read-only file system" "$(marker "ro-$op")"
	done
	expect_eq "$t: ro: reads work" "read-only content" "$(marker ro-read)"
	expect_eq "$t: ro: listing" "empty host.txt " "$(marker ro-ls)"
	ro_after=$(snapshot_all "$ro")
	if [ "$ro_before" = "$ro_after" ]; then
		ok "$t: ro: host directory unchanged"
	else
		nok "$t: ro: host directory unchanged: $(changes "$ro_before" "$ro_after")"
	fi
	expect_eq "$t: a 36-byte tag (full config field) is mounted" 1 "$(marker tag36-mounted)"
	expect_eq "$t: a 36-byte tag share is readable" "tag36 content" "$(marker tag36-read)"
	# devices=host: real nodes on both sides; devices=deny: EPERM, FIFOs still made.
	expect_match "$t: devices=host: mknod c succeeds" "^rc=0" "$(marker dh-mknod-c)"
	expect_match "$t: devices=host: mknod b succeeds" "^rc=0" "$(marker dh-mknod-b)"
	expect_eq "$t: devices=host: the guest sees the nodes" "character special file 1:3,block special file 7:0," "$(marker dh-types)"
	expect_eq "$t: devices=host: host: c is a real char device 1:3" "character special file 1:3" "$(stat -c '%F %t:%T' "$dh/c" 2>&1)"
	expect_eq "$t: devices=host: host: b is a real block device 7:0" "block special file 7:0" "$(stat -c '%F %t:%T' "$dh/b" 2>&1)"
	expect_match "$t: devices=deny: mknod c fails with EPERM" "^rc=[1-9][0-9]* .*Operation not permitted" "$(marker dd-mknod-c)"
	expect_match "$t: devices=deny: mknod b fails with EPERM" "^rc=[1-9][0-9]* .*Operation not permitted" "$(marker dd-mknod-b)"
	expect_match "$t: devices=deny: mkfifo still works" "^rc=0" "$(marker dd-mkfifo)"
	expect_eq "$t: devices=deny: host: only the FIFO" "p" "$(ls -A "$dd" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
	printf '%s\n' "$out" | indent
done

# Bad --share options: exit 1, exactly one line on stderr naming the problem, no guest.
echo "# bad --share"
bad() {
	local name=$1 pat=$2; shift 2
	timeout 120 "$M" --kernel "$K" --initrd "$G" "$@" -- true >"$base/out" 2>"$base/err" </dev/null
	local rc=$? lines
	lines=$(wc -l <"$base/err")
	if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -s "$base/out" ] && grep -Eq -- "$pat" "$base/err"; then
		ok "$name"
	else
		nok "$name: rc=$rc, $lines stderr lines: $(head -c 300 "$base/err"), stdout: $(head -c 200 "$base/out")"
	fi
}
good=$root/pci/share
printf x >"$base/file"
bad "--share path=/nonexistent"      "/nonexistent.*No such file"  --share tag=t,path=/nonexistent
bad "--share: duplicate tag"          "tag 't' is used twice"       --share "tag=t,path=$good" --share "tag=t,path=$base"
bad "--share: tag of 37 bytes"        "tag must be 1 to 36 bytes"   --share "tag=${tag36}x,path=$good"
bad "--share: unknown key"            "unknown key 'bogus'"         --share "tag=t,path=$good,bogus=1"
bad "--share: path is a regular file" "is not a directory"          --share "tag=t,path=$base/file"
bad "--share: no path"                "no path= given"              --share tag=t
bad "--share: bad cache mode"         "cache must be never, auto or always" --share "tag=t,path=$good,cache=sometimes"
bad "--share: bad suid value"         "suid must be on or off"      --share "tag=t,path=$good,suid=yes"
bad "--share: bad devices value"      "devices must be mapped, host or deny" --share "tag=t,path=$good,devices=real"
bad "--share: bad owner value"        "owner must be host or mapped" --share "tag=t,path=$good,owner=me"
finish
