#!/usr/bin/env bash
# The search index at scale (issue 16): index N synthetic studies with reports in French, German
# and English (the relevance set's generator) into an index on disk, committing every 1000 as the
# archive's indexer does per batch of the change feed, then time the relevance set's 53 queries
# (half of the rounds as a reader of one tenant, a quarter on the second page). Prints
# studies/s, index size, peak memory and query latency percentiles.
#
#   loadtest/search-scale.sh [STUDIES]      (default 1000000; the index goes to loadtest/out/)
set -euo pipefail
cd "$(dirname "$0")/.."
studies="${1:-1000000}"
out="loadtest/out/search-scale"
cargo build --release -q -p vna-search --example search_bench
mkdir -p loadtest/out
target/release/examples/search_bench --studies "$studies" --dir "$out" --commit-every 1000 --rounds 20
rm -rf "$out"
