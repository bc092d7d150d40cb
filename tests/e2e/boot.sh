#!/bin/bash
# End-to-end: boot Debian's kernel with the guest image on real KVM and check what a user
# relies on: exit statuses, byte-exact output, CPUs, memory, console input, power-off,
# reset, crash reporting.  Usage: tests/e2e/boot.sh MINIVMM KERNEL GUEST_IMAGE
set -u
. "$(dirname "$0")/lib.sh"
M=$(realpath "$1") K=$2 G=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Every guest is bounded: a hang must fail its check, not stall the whole run.
VM_TIMEOUT=${VM_TIMEOUT:-300}
vm() { timeout "$VM_TIMEOUT" "$M" --kernel "$K" --initrd "$G" "$@"; }

out=$(vm -- sh -c 'exit 3' </dev/null); rc=$?
expect_eq "command exit status passes through" 3 "$rc"
expect_eq "quiet: no kernel output around a command" "" "$out"

out=$(vm -- printf '%s|' 'a b' "it's" '$x' '' 'back\slash' </dev/null); rc=$?
expect_eq "arguments arrive intact, output byte-exact" "a b|it's|\$x||back\\slash|" "$out"
expect_eq "printf status" 0 "$rc"

out=$(vm --cpus 2 --mem 300M -- sh -c 'nproc; sed -n "s/^MemTotal: *\([0-9]*\) kB/\1/p" /proc/meminfo' </dev/null)
expect_eq "--cpus 2: guest sees 2 CPUs" 2 "$(echo "$out" | sed -n 1p)"
mem=$(echo "$out" | sed -n 2p)
# MemTotal excludes what the kernel reserves for itself (~50 MiB here).
if [ -n "$mem" ] && [ "$mem" -gt $((200 * 1024)) ] && [ "$mem" -le $((300 * 1024)) ]; then
	ok "--mem 300M: MemTotal $mem kB"
else
	nok "--mem 300M: MemTotal [$mem] kB"
fi

out=$(vm --cpus 4 --mem 5G -- sh -c 'nproc; grep -c "^processor" /proc/cpuinfo; free -m | awk "/Mem:/{print \$2}"' </dev/null)
expect_eq "--cpus 4 online" "4" "$(echo "$out" | sed -n 1p)"
total=$(echo "$out" | sed -n 3p)
if [ -n "$total" ] && [ "$total" -gt 4500 ]; then ok "--mem 5G: RAM above the 4 GiB hole is used ($total MiB)"; else nok "--mem 5G: [$total] MiB"; fi

out=$(vm --cmdline "minivmm.test=42" -- cat /proc/cmdline </dev/null)
expect_match "--cmdline is appended to the defaults" "^console=ttyS0 .*minivmm.test=42" "$out"

out=$(vm -- sh -c 'test -c /dev/port && dmesg | grep -c "clocksource.*kvm-clock"' </dev/null)
expect_match "kvmclock in use" "^[1-9]" "$out"

vm -- sh -c 'kill -9 $$' </dev/null; rc=$?
expect_eq "command killed by SIGKILL -> 137" 137 "$rc"

vm -- nonexistent-command </dev/null 2>/dev/null; rc=$?
expect_eq "command not found -> 127" 127 "$rc"

vm -- sh -c 'poweroff -f; sleep 30' </dev/null; rc=$?
expect_eq "ACPI power-off -> 0" 0 "$rc"

vm -- sh -c 'reboot -f; sleep 30' </dev/null; rc=$?
expect_eq "reboot (i8042 / ACPI reset) -> 123" 123 "$rc"

# Console input: bytes piped into minivmm reach a guest program reading the console, and
# none is lost while the guest's 8250 driver opens the port (which clears its FIFOs).
# (Piping into the interactive shell itself races with the shell's start-up on the
# console and is not tested here: a known issue.)
out=$(printf 'hello-42\nsecond line\n' | vm -- sh -c 'read -r a; read -r b; echo "got:$a|$b"' 2>&1); rc=$?
# (Input that arrives before the guest image turns echo off is echoed by the guest's tty:
# a known issue, so only the program's own line is checked.)
expect_match "console input reaches the guest, in order, nothing lost" "^got:hello-42\|second line$" "$out"
expect_eq "console input: status" 0 "$rc"

# A kernel whose entry point faults with no IDT: a triple fault must end minivmm with
# status 125 and one line naming the exit and RIP.  Built from the real setup header.
setup=$(( ($(od -An -tu1 -j $((0x1f1)) -N1 "$K") + 1) * 512 ))
head -c "$setup" "$K" >"$T/fault"
{ head -c 512 /dev/zero; printf '\017\013'; head -c 14 /dev/zero; } >>"$T/fault"
printf '\041\000\000\000' | dd of="$T/fault" bs=1 seek=$((0x1f4)) conv=notrunc 2>/dev/null
# --no-kernel-cache: the header still describes the real kernel's payload, which this
# file does not carry; the classic path jumps straight to our entry code.
timeout "$VM_TIMEOUT" "$M" --kernel "$T/fault" --no-kernel-cache </dev/null >"$T/out" 2>"$T/err"; rc=$?
expect_eq "triple fault -> 125" 125 "$rc"
# Intel KVM keeps the faulting RIP; AMD re-INITs the vCPU on shutdown, and then minivmm must
# say the RIP is unavailable rather than print the reset vector.
expect_match "triple fault is reported (RIP, or why it is unavailable)" \
	"^minivmm: guest triple fault on vCPU 0 (at RIP 0x1000200 |\(KVM_EXIT_SHUTDOWN\); RIP unavailable)" "$(cat "$T/err")"
expect_eq "triple fault: one line" 1 "$(wc -l <"$T/err")"
finish
