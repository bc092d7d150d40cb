#!/bin/sh
# Run libFuzzer targets for SECONDS each, two at a time (one core each), from the checked-in
# seeds in tests/fuzz/corpus/TARGET/; the corpus grows in build/fuzz/corpus/TARGET/ and
# crash/leak/timeout inputs land in build/fuzz/artifacts/.  One line per target with its
# executions, then "N passed, M failed"; exit status 1 if any target failed.
#   tests/fuzz/run.sh SECONDS TARGET...
set -u
secs=$1
shift
B=${B:-build}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
mkdir -p "$B/fuzz/logs" "$B/fuzz/artifacts"

one() {
	t=$1
	mkdir -p "$B/fuzz/corpus/$t"
	log=$B/fuzz/logs/$t.log
	# -timeout: one input taking 10 s is a hang; -rss_limit_mb: ASan's own overhead included.
	"$B/fuzz/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$B/fuzz/artifacts/$t-" \
		"$B/fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	if [ "$rc" = 0 ]; then
		echo "fuzz $t: ok, ${execs:-?} executions in $secs s"
	else
		echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} executions, see $log"
		grep -m3 -E '^(SUMMARY|==[0-9]+==ERROR|.*check failed)' "$log" | sed 's/^/    /'
	fi
	return "$rc"
}

# Two at a time: start a pair, wait for both, next pair.
pass=0
fail=0
set -- "$@"
while [ $# -gt 0 ]; do
	a=$1
	shift
	one "$a" >"$B/fuzz/logs/.$a.res" &
	pa=$!
	b=
	if [ $# -gt 0 ]; then
		b=$1
		shift
		one "$b" >"$B/fuzz/logs/.$b.res" &
		pb=$!
	fi
	if wait "$pa"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
	cat "$B/fuzz/logs/.$a.res"
	if [ -n "$b" ]; then
		if wait "$pb"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
		cat "$B/fuzz/logs/.$b.res"
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
