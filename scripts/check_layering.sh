#!/usr/bin/env bash
# Checks every #include against the dependency arrows of DESIGN.md:
# common includes neither agent nor controller; agent never includes
# controller; the controller core never includes agent (only controller/cli
# wires the two). Prints file:line for each include that breaks them.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
check() {  # folder, forbidden include prefix, exception folder
  local dir=$1 forbidden=$2 except=${3:-}
  while IFS= read -r hit; do
    [ -n "$except" ] && [[ $hit == $except* ]] && continue
    echo "layering: $hit includes $forbidden (not allowed from $dir/)"
    bad=1
  done < <(grep -rnE "#include \"$forbidden" "$dir" --include=*.h --include=*.cc 2>/dev/null | cut -d: -f1,2)
}
check common agent/
check common controller/
check agent controller/
check controller agent/ controller/cli/
check proto agent/
check proto controller/
if [ $bad = 0 ]; then echo "layering: ok"; fi
exit $bad
