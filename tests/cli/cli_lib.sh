# Helpers of the CLI tests (sourced): $exe is mamba-ft; check/run keep counts; $tmp is removed on exit.
failures=0
pass=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name"; failures=$((failures + 1)); fi
}
# run EXPECTED_RC ARGS...: runs mamba-ft, keeps stdout/stderr in $tmp/out, $tmp/err, returns 0 if rc matches
run() {
  local want=$1; shift
  "$exe" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$want" = nonzero ]; then [ $rc -ne 0 ]; else [ $rc -eq "$want" ]; fi
}
run_in() {  # run_in INPUT_FILE EXPECTED_RC ARGS...: run with stdin from INPUT_FILE
  local input=$1; shift
  run "$@" <"$input"
}
one_line_error() {  # stderr is exactly one line starting with "mamba-ft" or CLI11's message + hint
  [ "$(wc -l <"$tmp/err")" -le 2 ] && ! grep -q "Exception raised from" "$tmp/err" && ! grep -qi "frame #" "$tmp/err"
}
