#!/bin/bash
# A new user's path, from a fresh clone: make deps, the README's build, make install into
# a DESTDIR, then the installed minivmm run from another directory (twice: the second must
# reuse the cache, checked by the cache files' times), stdin through a pipe, stdout and
# stderr in order on one file, bad installs, and make uninstall leaving nothing.
# Where this machine has no hardware KVM, minivmm run goes through the installed emulated
# host, so this runs outside tools/with-kvm.  Clones the committed HEAD of this repository.
# Usage: tests/e2e/install.sh
set -u
cd "$(dirname "$0")/../.." || exit 2
. tests/e2e/lib.sh
repo=$PWD
T=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-install.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME=$T/cache

if ! git clone -q "$repo" "$T/src" 2>"$T/err"; then
	nok "git clone: $(head -c 300 "$T/err")"
	finish; exit 1
fi
cd "$T/src" || exit 2
if make deps >"$T/deps.log" 2>&1; then ok "make deps"; else nok "make deps: $(tail -n 3 "$T/deps.log")"; fi
if make -j2 all guest >"$T/build.log" 2>&1; then ok "make all guest"; else nok "make: $(tail -n 3 "$T/build.log")"; fi
D=$T/dest P=/opt/minivmm-test
if make install DESTDIR="$D" PREFIX=$P >"$T/inst.log" 2>&1; then ok "make install"; else nok "make install: $(tail -n 3 "$T/inst.log")"; fi
for f in bin/minivmm libexec/minivmm/guest/mkinitrd libexec/minivmm/guest/minivmm-run \
	libexec/minivmm/tools/emuhost share/man/man1/minivmm.1; do
	[ -f "$D$P/$f" ] || nok "installed: $f missing"
done
# The page is made from the --help texts: every option either text names is on it.
missing=
for o in $( { "$D$P/bin/minivmm" --help; "$D$P/bin/minivmm" run --help; } | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	grep -qF -- "$o" "$D$P/share/man/man1/minivmm.1" || missing="$missing $o"
done
expect_eq "the man page names every option of --help and run --help" "" "$missing"

# From another directory, away from the source tree.
mkdir "$T/elsewhere" && cd "$T/elsewhere" || exit 2
mv "$T/src" "$T/src.moved"      # the installed binary must not need its build tree
mv=$D$P/bin/minivmm
"$mv" run -q -- sh -c 'echo first' >"$T/out1" 2>"$T/err1"; rc=$?
expect_eq "installed minivmm run, first: status 0" 0 "$rc"
expect_eq "installed minivmm run, first: output" first "$(cat "$T/out1")"
[ $rc -eq 0 ] || echo "# stderr: $(head -c 500 "$T/err1")"
# Each cached file by name, inode, size and modification time; unpacked kernels without the
# time, since a cache hit refreshes it (pruning keeps the most recently used), but a kernel
# unpacked again is a new file (written aside, renamed into place): a new inode.
stamp() {
	{
		find "$XDG_CACHE_HOME/minivmm" -type f \( -name '*.img' -o -name vmlinux \) \
			-printf '%p %i %s %T@\n' 2>/dev/null
		find "$XDG_CACHE_HOME/minivmm" -type f -name '*.elf' -printf '%p %i %s\n' 2>/dev/null
	} | sort
}
before=$(stamp)
n=$(echo "$before" | grep -c run/)
expect_eq "the guest image is cached (one run/*.img)" 1 "$n"
# Second run: stdin through a pipe, stdout and stderr on one file in order.
printf 'a\nb\n' | "$mv" run -q -- sh -c 'wc -l; echo two >&2; echo three' >"$T/out2" 2>&1; rc=$?
expect_eq "second run: status 0" 0 "$rc"
expect_eq "second run: stdin through a pipe, stdout and stderr in order" "2
two
three" "$(cat "$T/out2")"
expect_eq "second run reuses every cached file (same names, inodes, sizes, times)" "$before" "$(stamp)"

# Bad installs and caches: one line naming the path, non-zero status.
rm "$D$P/libexec/minivmm/guest/init"
MINIVMM_NO_EMUHOST=1 "$mv" run -q -- true >/dev/null 2>"$T/err"; rc=$?
expect_eq "missing helper: status 1, one line" "1 1" "$rc $(wc -l <"$T/err")"
expect_match "missing helper: names the path" "libexec/minivmm/guest/init' is missing" "$(cat "$T/err")"
: >"$T/notadir"
mkdir -p "$T/c2" && : >"$T/c2/minivmm"
XDG_CACHE_HOME=$T/c2 MINIVMM_NO_EMUHOST=1 "$mv" run -q -- true >/dev/null 2>"$T/err"; rc=$?
expect_eq "cache that is a file: status 1, one line" "1 1" "$rc $(wc -l <"$T/err")"
expect_match "cache that is a file: names it" "$T/c2/minivmm" "$(cat "$T/err")"
mv "$T/src.moved" "$T/src" && cd "$T/src" || exit 2
make install PREFIX=/proc/minivmm-test >/dev/null 2>"$T/err"; rc=$?
expect_match "install into an unwritable prefix fails naming it" "install: cannot write to '/proc'" "$(cat "$T/err")"
[ "$rc" -ne 0 ] || nok "install into an unwritable prefix: status 0"

make uninstall DESTDIR="$D" PREFIX=$P >/dev/null 2>&1
expect_eq "make uninstall leaves no file" "" "$(find "$D" -type f)"
finish
