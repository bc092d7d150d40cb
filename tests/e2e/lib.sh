# Shared by the end-to-end scripts: counters, checks, and the closing line test runners read.
# Source it; call `check NAME CMD...`-style helpers, then `finish`.
PASS=0 FAIL=0
ok()   { PASS=$((PASS + 1)); echo "ok - $*"; }
nok()  { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else nok "$1: expected [$2], got [$3]"; fi
}
# expect_match NAME PATTERN(grep -E) TEXT
expect_match() {
	if printf '%s\n' "$3" | grep -Eq -- "$2"; then ok "$1"; else nok "$1: [$3] does not match /$2/"; fi
}
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# bad NAME PATTERN ARGS... : exit 1, exactly one stderr line matching PATTERN, no stdout.
# Needs $M (the minivmm binary) and $T (a scratch directory).
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

