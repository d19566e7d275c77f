# Sourced by the benchmark scripts.
#
# timed CMD...: runs CMD (which prints one JSON object), then prints that
# object with the CPU seconds CMD used added (cpu_user_s, cpu_sys_s).
timed() {
  local t out
  t=$(mktemp)
  out=$(/usr/bin/time -o "$t" -f '%U %S' "$@")
  read -r user sys <"$t"
  rm -f "$t"
  echo "${out%\}},\"cpu_user_s\":$user,\"cpu_sys_s\":$sys}"
}
