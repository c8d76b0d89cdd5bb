#!/bin/sh
# fuzz/run.sh BINARY SECONDS TARGET...: runs each libFuzzer target for SECONDS
# (`make fuzz` builds BINARY first). The inputs libFuzzer finds go to
# .build-fuzz/corpus/<target>/ (the repository's fuzz/corpus/<target>/ seeds
# are read, never written); a crash stops the run with the input saved in
# .build-fuzz/crashes/. Prints libFuzzer's final line (executions, cov, ft) per target.
set -u
bin=$1; seconds=$2; shift 2
status=0
mkdir -p .build-fuzz/crashes
for t in "$@"; do
    mkdir -p ".build-fuzz/corpus/$t"
    log=".build-fuzz/$t.log"
    MESHQ_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix=".build-fuzz/crashes/$t-" ".build-fuzz/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz $t: ${seconds}s, ${execs:-?} executions; ${done_line:-no DONE line}"
    if [ $rc -ne 0 ]; then
        status=1
        echo "fuzz $t: FAILED (exit $rc); libFuzzer's report:"
        grep -E 'ERROR|Fatal error|fuzz invariant|Test unit written|SUMMARY' "$log" | head -20
        echo "reproduce: swift build --product meshq-fuzz && .build/debug/meshq-fuzz $t <the file above>"
        echo "then copy that file into fuzz/corpus/$t/ (FuzzCorpusTests replays it) and fix the bug"
    fi
done
exit $status
