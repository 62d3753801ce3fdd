#!/usr/bin/env bash
# One round of the storage comparison in loadtest/RESULTS.md: the same `vna-loadtest all` run
# on the filesystem tier, then on an S3 tier (a fresh single-node Ceph RGW from
# scripts/s3-throwaway.sh, a bucket with Object Lock, every version COMPLIANCE-retained).
#
#   cargo build --release -p vna -p vna-loadtest
#   loadtest/compare-storage.sh [OUT_DIR]     # writes OUT_DIR/{fs,s3}.json (default /tmp)
#
# Needs the AWS CLI (scripts/test.sh puts one in .venv) to create the bucket. Extra arguments
# for both runs: VNA_LOADTEST_ARGS (default: the figures of RESULTS.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-/tmp}"
mkdir -p "$out"
args=(${VNA_LOADTEST_ARGS:---instances 2000 --batch 10 --concurrency 4 --associations 1,4 --qido-requests 2000 --slide-frames 2000 --frame-requests 2000 --big-mb 2048})
aws_cli="$(command -v aws || echo .venv/bin/aws)"
[[ -x target/release/vna && -x target/release/vna-loadtest ]] || { echo "build first: cargo build --release -p vna -p vna-loadtest" >&2; exit 1; }

mkdir -p .test-env
state="$(mktemp -d "$PWD/.test-env/bench-s3.XXXXXX")"
export VNA_S3_STATE_DIR="$state"
secret="$state/s3-secret"
trap 'scripts/s3-throwaway.sh stop >/dev/null 2>&1 || true; rm -rf -- "$state"' EXIT
set -a; eval "$(scripts/s3-throwaway.sh start)"; set +a
AWS_ACCESS_KEY_ID=$VNA_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$VNA_TEST_S3_SECRET_KEY AWS_DEFAULT_REGION=$VNA_TEST_S3_REGION \
    "$aws_cli" --endpoint-url "$VNA_TEST_S3_ENDPOINT" s3api create-bucket --bucket vna-bench --object-lock-enabled-for-bucket >/dev/null
printf %s "$VNA_TEST_S3_SECRET_KEY" >"$secret"
sleep 20  # let the fresh cluster settle

uptime
echo "=== filesystem"
target/release/vna-loadtest --json "$out/fs.json" all --vna-bin target/release/vna --work-dir /tmp "${args[@]}"
uptime
echo "=== s3"
P=VNA__STORAGE__TIERS__S3__
env VNA__STORAGE__DEFAULT_TIER=s3 ${P}KIND=s3 ${P}ENDPOINT="$VNA_TEST_S3_ENDPOINT" ${P}REGION="$VNA_TEST_S3_REGION" \
    ${P}BUCKET=vna-bench ${P}PREFIX=vna/ ${P}ACCESS_KEY_ID="$VNA_TEST_S3_ACCESS_KEY" ${P}SECRET_ACCESS_KEY_FILE="$secret" \
    ${P}OBJECT_LOCK=true "${P}RETENTION={ mode = \"COMPLIANCE\", days = 1 }" \
    target/release/vna-loadtest --json "$out/s3.json" all --vna-bin target/release/vna --work-dir /tmp --skip-machine "${args[@]}"
uptime
