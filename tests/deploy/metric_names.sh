#!/usr/bin/env bash
# Every flexgate metric the dashboard, the alert rules and the rule tests use must be
# one that flexgate exports:
#
#   tests/deploy/metric_names.sh SCRAPE_FILE
#
# SCRAPE_FILE is the text of a live /metrics scrape. Take it after some traffic: a
# labelled metric appears in the exposition only once it has a series. Names are
# compared without the histogram suffixes _bucket, _sum and _count; # HELP and # TYPE
# lines count as exported. Exits 1 and lists the missing names, 2 on bad usage.
set -euo pipefail

if [[ $# -ne 1 || ! -r $1 ]]; then
    echo "usage: $0 SCRAPE_FILE" >&2
    exit 2
fi
scrape=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

shopt -s nullglob
files=(deploy/grafana/dashboards/*.json deploy/prometheus/rules/*.yml deploy/prometheus/tests/*.yml)
if [[ ${#files[@]} -eq 0 ]]; then
    echo "metric_names.sh: no dashboard or rule files found under $root/deploy" >&2
    exit 2
fi

strip_suffix() { sed -E 's/_(bucket|sum|count)$//' | sort -u; }

used=$(grep -ohE 'flexgate_[a-z0-9_]+' "${files[@]}" | strip_suffix)
exported=$(grep -oE '^(# (HELP|TYPE) )?flexgate_[a-z0-9_]+' "$scrape" | sed -E 's/^# (HELP|TYPE) //' | strip_suffix || true)

if [[ -z $used ]]; then
    echo "metric_names.sh: found no flexgate_ metric in ${files[*]}" >&2
    exit 2
fi

missing=$(comm -23 <(printf '%s\n' "$used") <(printf '%s\n' "$exported"))
if [[ -n $missing ]]; then
    echo "metrics used by the dashboard or the alert rules but not in $1:"
    printf '  %s\n' $missing
    exit 1
fi
echo "metric_names.sh: all $(printf '%s\n' "$used" | wc -l) metric names used by the dashboard and the rules are exported"
