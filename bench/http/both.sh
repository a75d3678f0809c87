#!/usr/bin/env bash
# Runs one wrk per host at the same time and prints their results merged
# into one RESULT line (requests, non-2xx and socket errors summed; the
# longest duration; the worse host's percentiles), then one HOST line per
# host, so bench/http/run reads two hosts like one.
#
#   both.sh URL1 URL2 -- wrk ARGS…   (each URL is appended to one wrk)
set -euo pipefail
url1=$1 url2=$2
shift 3
out1=$(mktemp) out2=$(mktemp)
trap 'rm -f "$out1" "$out2"' EXIT
"$@" "$url1" >"$out1" &
pid1=$!
"$@" "$url2" >"$out2" &
pid2=$!
wait "$pid1"
wait "$pid2"
r1=$(grep '^RESULT ' "$out1") r2=$(grep '^RESULT ' "$out2")
awk -v a="$r1" -v b="$r2" 'BEGIN {
    n = split("requests duration_us p50_us p90_us p99_us max_us non2xx socket_errors", keys, " ")
    split(a, fa, " "); split(b, fb, " ")
    for (i = 2; i <= n + 1; i++) { split(fa[i], x, "="); A[x[1]] = x[2]; split(fb[i], y, "="); B[y[1]] = y[2] }
    line = "RESULT"
    for (i = 1; i <= n; i++) {
        k = keys[i]
        if (k == "requests" || k == "non2xx" || k == "socket_errors") v = A[k] + B[k]
        else v = (A[k] > B[k]) ? A[k] : B[k]
        line = line " " k "=" v
    }
    print line
    printf "HOST1 %s\nHOST2 %s\n", substr(a, 8), substr(b, 8)
}'
