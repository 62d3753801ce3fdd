#!/usr/bin/env bash
# Lifecycle apply on S3 (the throw-away single-node Ceph RGW with Object Lock), against the
# store's own rate for the same locks: N tiny instances imported into an S3 tier without
# policies (nothing locked), then `vna lifecycle apply` of the example policies locks each
# object version (GetObjectRetention, then PutObjectRetention by version id), and the same
# calls made directly with botocore (each extending one of those locks by a day), on one thread
# as one job walks its objects and on four, give the store's own rate.
#
#   loadtest/lifecycle-s3.sh [--instances N] [--runners R] [--out DIR]
#
# With --runners R, the apply run is split into R jobs taken by R runners at once.
#
# Needs a release build (`cargo build --release -p vna -p vna-loadtest`) and the test venv
# (`.venv`, made by scripts/test.sh: the AWS CLI); botocore goes into a venv of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

instances=5000 out="" runners=1
while (($#)); do
    case $1 in
        --instances) instances="$2"; shift 2 ;;
        --runners) runners="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: loadtest/lifecycle-s3.sh [--instances N] [--runners R] [--out DIR]" >&2; exit 2 ;;
    esac
done
out="${out:-loadtest/out/lifecycle-s3-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
bin="${VNA_COMPARE_BIN:-target/release}"
[[ -x $bin/vna && -x $bin/vna-loadtest ]] || { echo "build first: cargo build --release -p vna -p vna-loadtest" >&2; exit 1; }
py=.venv/bin/python
[[ -x $py ]] || { echo "run scripts/test.sh once first (it makes .venv)" >&2; exit 1; }
policies="$PWD/lifecycle-policies"
now="2027-06-01"

state="$(mktemp -d "${TMPDIR:-/tmp}/vna-lcs3.XXXXXX")"
cleanup() {
    VNA_S3_STATE_DIR="$state/s3" scripts/s3-throwaway.sh stop >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
set -a
eval "$(VNA_S3_STATE_DIR="$state/s3" scripts/s3-throwaway.sh start)"
set +a
export AWS_ACCESS_KEY_ID="$VNA_TEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$VNA_TEST_S3_SECRET_KEY" AWS_DEFAULT_REGION="$VNA_TEST_S3_REGION"
bucket="vna-lcs3"
.venv/bin/aws --endpoint-url "$VNA_TEST_S3_ENDPOINT" s3api create-bucket --bucket "$bucket" --object-lock-enabled-for-bucket >/dev/null
printf '%s\n' "$VNA_TEST_S3_SECRET_KEY" >"$state/secret"
export VNA__STORAGE__DEFAULT_TIER=s3 VNA__STORAGE__TIERS__S3__KIND=s3 VNA__STORAGE__TIERS__S3__ENDPOINT="$VNA_TEST_S3_ENDPOINT" \
    VNA__STORAGE__TIERS__S3__REGION="$VNA_TEST_S3_REGION" VNA__STORAGE__TIERS__S3__BUCKET="$bucket" VNA__STORAGE__TIERS__S3__PREFIX=vna/ \
    VNA__STORAGE__TIERS__S3__ACCESS_KEY_ID="$VNA_TEST_S3_ACCESS_KEY" VNA__STORAGE__TIERS__S3__SECRET_ACCESS_KEY_FILE="$state/secret" \
    VNA__STORAGE__TIERS__S3__OBJECT_LOCK=true

{
    echo "# lifecycle apply on S3, $(date -u +%Y-%m-%dT%H:%MZ), single-node Ceph RGW on this machine, embedded index"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "corpus: $instances 16x16 CT-like instances; policies: lifecycle-policies/ as of $now"
} | tee "$out/context.txt"
data="$state/data"; mkdir -p "$data"
"$bin/vna-loadtest" populate --instances "$instances" --image-size 16 --dir "$state/files" >/dev/null
t0=$(date +%s.%N)
"$bin/vna" --data-dir "$data" import --parallel 8 --quiet "$state/files" >"$state/import.out" 2>&1 || { tail -20 "$state/import.out" >&2; exit 1; }
t1=$(date +%s.%N)
awk -v n="$instances" -v a="$t0" -v b="$t1" 'BEGIN {printf "import into S3: %.1f s = %.0f instances/s\n", b-a, n/(b-a)}' | tee "$out/figures.txt"

hash="$("$bin/vna" --data-dir "$data" lifecycle plan --policies "$policies" --now "$now" --json | $py -c 'import json,sys; print(json.load(sys.stdin)["planHash"])')"
t0=$(date +%s.%N)
VNA__JOBS__RUNNERS="$runners" "$bin/vna" --data-dir "$data" lifecycle apply --policies "$policies" --now "$now" --plan "$hash" \
    --instances-per-job $(((instances + runners - 1) / runners)) >"$out/apply.json"
t1=$(date +%s.%N)
$py - "$out/apply.json" "$t0" "$t1" <<'EOF' | tee -a "$out/figures.txt"
import json, sys
o = json.load(open(sys.argv[1]))["outcome"]
s = float(sys.argv[3]) - float(sys.argv[2])
print(f"vna lifecycle apply ({len(json.load(open(sys.argv[1]))['jobs'])} jobs): {o['examined']} examined in {s:.1f} s = {o['examined'] / s:.0f} objects/s; locks {o['locks']}")
EOF

# The store's own rate: PutObjectRetention on the same object versions, 4 threads.
python3 -m venv "$state/py" && "$state/py/bin/pip" install -q botocore >/dev/null
"$state/py/bin/python" - "$bucket" "$instances" <<'EOF' | tee -a "$out/figures.txt"
import concurrent.futures, datetime, os, sys, time
import botocore.session
bucket, n = sys.argv[1], int(sys.argv[2])
s3 = botocore.session.get_session().create_client("s3", endpoint_url=os.environ["VNA_TEST_S3_ENDPOINT"])
versions, marker = [], {}
while True:
    page = s3.list_object_versions(Bucket=bucket, **marker)
    versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    if not page.get("IsTruncated"):
        break
    marker = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
def extend(kv):
    key, vid = kv
    try:
        cur = s3.get_object_retention(Bucket=bucket, Key=key, VersionId=vid).get("Retention")
    except s3.exceptions.ClientError:
        cur = None  # not locked (RGW answers ObjectLockConfigurationNotFoundError)
    if not cur:
        return 0
    until = cur["RetainUntilDate"] + datetime.timedelta(days=1)
    s3.put_object_retention(Bucket=bucket, Key=key, VersionId=vid, Retention={"Mode": cur["Mode"], "RetainUntilDate": until})
    return 1
# One thread (as one job walks its objects) on a third of the versions, four on the rest.
third = len(versions) // 3
for threads, part in ((1, versions[:third]), (4, versions[third:])):
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        done = sum(pool.map(extend, part))
    t = time.monotonic() - t0
    print(f"botocore, GetObjectRetention + PutObjectRetention per locked version, {threads} thread(s): {done} in {t:.1f} s = {done / t:.0f} versions/s")
EOF
echo "reports in $out"
