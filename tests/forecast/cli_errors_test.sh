#!/bin/sh
# ppe-forecast must reject bad input with a message and a non-zero exit.
cli="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect_error() {  # name, input, args...
  name="$1"; input="$2"; shift 2
  printf '%b' "$input" > "$tmp/in"
  if "$cli" "$tmp/in" "$@" > "$tmp/out" 2> "$tmp/err"; then
    echo "FAIL $name: exit 0"; fail=1
  elif ! grep -q "error" "$tmp/err"; then
    echo "FAIL $name: no message"; fail=1
  else
    echo "ok   $name: $(head -1 "$tmp/err")"
  fi
}
expect_error empty "" --horizon 3
expect_error non_numeric "1\n2\nx\n" --horizon 3
expect_error too_short "5\n" --horizon 3
expect_error bad_period "1\n2\n3\n4\n" --period 0
expect_error bad_level "1\n2\n3\n4\n" --level 100
expect_error bad_model "1\n2\n3\n4\n" --model foo
expect_error bad_combine_within "1\n2\n3\n4\n" --combine-within 0.5
printf '1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n' > "$tmp/ok"
if ! "$cli" "$tmp/ok" --horizon 2 > "$tmp/out" || ! grep -q '"mean"' "$tmp/out"; then
  echo "FAIL good input"; fail=1
else
  echo "ok   good input"
fi
exit $fail
