#!/usr/bin/env bash
# Wait until every Job a label selector matches is Complete, and fail as soon as one
# has Failed: `kubectl wait --for=condition=complete` would sit out its whole timeout
# on a failed Job. A Job still retrying (within its backoffLimit) is waited for.
#
#   scripts/wait-jobs.sh NAMESPACE SELECTOR TIMEOUT_SECONDS
#   e.g. scripts/wait-jobs.sh data-ingest app.kubernetes.io/name=data-ingest 600
set -euo pipefail

namespace=$1 selector=$2 timeout=$3
deadline=$((SECONDS + timeout))
# One line per Job: its name, then the types of its conditions that are True.
states='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.status=="True")].type}{"\n"}{end}'

while true; do
    jobs=$(kubectl -n "$namespace" get jobs -l "$selector" -o jsonpath="$states")
    [[ -n "$jobs" ]] || { echo "wait-jobs: no Job in $namespace matches $selector" >&2; exit 1; }
    failed=$(awk '/ Failed( |$)/ {print $1}' <<<"$jobs")
    if [[ -n "$failed" ]]; then
        for job in $failed; do
            echo "wait-jobs: job/$job failed; its last log lines:" >&2
            kubectl -n "$namespace" logs "job/$job" --tail=20 >&2 || true
        done
        exit 1
    fi
    pending=$(awk '!/ Complete( |$)/ {print $1}' <<<"$jobs")
    if [[ -z "$pending" ]]; then
        echo "wait-jobs: complete: $(awk '{print $1}' <<<"$jobs" | paste -sd' ')"
        exit 0
    fi
    ((SECONDS < deadline)) || { echo "wait-jobs: timed out waiting for ${pending//$'\n'/ }" >&2; exit 1; }
    sleep 5
done
