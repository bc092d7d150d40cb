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
