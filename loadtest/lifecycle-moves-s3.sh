#!/usr/bin/env bash
# Tier moves on S3 (the throw-away single-node Ceph RGW with Object Lock, two buckets: a hot
# tier and a cold one), against the store's own copy rate, and the frame latency of a slide
# viewer while the move job runs:
#
#  1. N CT-like instances (256x256, ~130 kB) imported into the hot bucket, with a policy that
#     retains CT ten years after ingest (GOVERNANCE) and moves it to the cold tier a day after
#     ingest; `vna serve` on that data with one job runner.
#  2. A slide-like instance (not CT: it stays hot) stored by `vna-loadtest frames`, and random
#     frames read in rounds of 2000 requests (4 clients): three rounds before any job.
#  3. POST /admin/lifecycle/apply as of two days later: the server's runner moves every CT
#     object (read, SHA-256 checked, written and locked in the cold bucket, read back and checked
#     again, catalog switched); frame rounds go on while it runs. Then the job's rate.
#  4. The store's own rate for the same bytes with botocore: CopyObject (server-side) and
#     GetObject + PutObject (through the client, as the archive copies), on one thread (as one
#     job walks its objects) and on four.
#
#   loadtest/lifecycle-moves-s3.sh [--instances N] [--out DIR]
#
# Needs a release build (`cargo build --release -p vna -p vna-loadtest`) and the test venv
# (`.venv`, made by scripts/test.sh: the AWS CLI); botocore goes into a venv of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

instances=3000 out=""
while (($#)); do
    case $1 in
        --instances) instances="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: loadtest/lifecycle-moves-s3.sh [--instances N] [--out DIR]" >&2; exit 2 ;;
    esac
done
out="${out:-loadtest/out/lifecycle-moves-s3-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
bin="${VNA_COMPARE_BIN:-target/release}"
[[ -x $bin/vna && -x $bin/vna-loadtest ]] || { echo "build first: cargo build --release -p vna -p vna-loadtest" >&2; exit 1; }
py=.venv/bin/python
[[ -x $py ]] || { echo "run scripts/test.sh once first (it makes .venv)" >&2; exit 1; }

state="$(mktemp -d "${TMPDIR:-/tmp}/vna-lcmv.XXXXXX")"
pid=""
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    VNA_S3_STATE_DIR="$state/s3" scripts/s3-throwaway.sh stop >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
set -a
eval "$(VNA_S3_STATE_DIR="$state/s3" scripts/s3-throwaway.sh start)"
set +a
export AWS_ACCESS_KEY_ID="$VNA_TEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$VNA_TEST_S3_SECRET_KEY" AWS_DEFAULT_REGION="$VNA_TEST_S3_REGION"
for b in vna-hot vna-cold vna-copy; do
    .venv/bin/aws --endpoint-url "$VNA_TEST_S3_ENDPOINT" s3api create-bucket --bucket "$b" --object-lock-enabled-for-bucket >/dev/null
done
printf '%s\n' "$VNA_TEST_S3_SECRET_KEY" >"$state/secret"
tier() { # NAME BUCKET
    local t="VNA__STORAGE__TIERS__${1^^}__"
    export "${t}KIND=s3" "${t}ENDPOINT=$VNA_TEST_S3_ENDPOINT" "${t}REGION=$VNA_TEST_S3_REGION" "${t}BUCKET=$2" \
        "${t}PREFIX=vna/" "${t}ACCESS_KEY_ID=$VNA_TEST_S3_ACCESS_KEY" "${t}SECRET_ACCESS_KEY_FILE=$state/secret" "${t}OBJECT_LOCK=true"
}
tier hot vna-hot
tier cold vna-cold
mkdir -p "$state/policies"
cat >"$state/policies/ct.toml" <<'EOF'
version = 1

[[rules]]
name = "ct-cold"
[rules.match]
modality = ["CT"]
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "10y", after = "ingest" }]
[rules.transition]
tier = "cold"
after = "1d"
priority = 1
EOF
export VNA__STORAGE__DEFAULT_TIER=hot VNA__LIFECYCLE__POLICIES_DIR="$state/policies" VNA__LIFECYCLE__HOT_MARGIN_DAYS=0 \
    VNA__JOBS__RUNNERS=1 VNA__JOBS__POLL_SECONDS=1

{
    echo "# lifecycle tier moves on S3, $(date -u +%Y-%m-%dT%H:%MZ), single-node Ceph RGW on this machine, embedded index"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "corpus: $instances 256x256 CT-like instances in the hot bucket; policy: CT retained 10 y, cold after 1 d"
} | tee "$out/context.txt"
data="$state/data"; mkdir -p "$data"
"$bin/vna-loadtest" populate --instances "$instances" --image-size 256 --dir "$state/files" >/dev/null
"$bin/vna" --data-dir "$data" import --parallel 8 --quiet "$state/files" >"$state/import.out" 2>&1 || { tail -20 "$state/import.out" >&2; exit 1; }
rm -rf "$state/files"

"$bin/vna" serve --data-dir "$data" --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0 >"$state/ready" 2>"$state/serve.log" &
pid=$!
for _ in $(seq 200); do grep -q '^vna ready' "$state/ready" && break; sleep 0.1; done
line="$(head -1 "$state/ready")"; base="${line#*http=}"; base="${base%% *}"
frames() { # LABEL
    "$bin/vna-loadtest" --json "$out/frames-$1.json" frames --url "$base/dicom-web" --server-pid "$pid" --requests 2000 >/dev/null
}
# The import's aftermath (the store settling) out of the way of the first figures.
sleep 30
for r in 1 2 3; do frames "before-$r"; done

# Two jobs of half the instances each, run one after the other by the one runner: the first
# with frame rounds beside it, the second alone.
now="$(date -u -d '+2 days' +%Y-%m-%d)"
hash="$(curl -sf "$base/admin/lifecycle/plan?now=$now" | $py -c 'import json,sys; print(json.load(sys.stdin)["planHash"])')"
curl -sf -X POST "$base/admin/lifecycle/apply?now=$now&plan=$hash&instancesPerJob=$((instances / 2))" >"$state/queued.json"
jobs=($($py -c 'import json,sys; print(*json.load(open(sys.argv[1]))["jobs"])' "$state/queued.json"))
state_of() { curl -sf "$base/admin/jobs/$1" | $py -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
r=0
while [[ "$(state_of "${jobs[0]}")" =~ ^(queued|running)$ ]]; do
    r=$((r + 1)); frames "during-$r"
done
while [[ "$(state_of "${jobs[-1]}")" =~ ^(queued|running)$ ]]; do sleep 0.5; done
for id in "${jobs[@]}"; do curl -sf "$base/admin/jobs/$id"; echo; done >"$out/jobs.jsonl"
for r in 1 2 3; do frames "after-$r"; done
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

$py - "$out" <<'EOF' | tee "$out/figures.txt"
import datetime, glob, json, os, statistics, sys
out = sys.argv[1]
at = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
jobs = [json.loads(l) for l in open(f"{out}/jobs.jsonl") if l.strip()]
for n, job in enumerate(jobs):
    o, t = job["outcome"], at(job["finishedAt"]) - at(job["startedAt"])
    beside = "with frame rounds beside it" if n == 0 else "alone"
    print(f"apply job {n + 1} of {len(jobs)} (1 runner in vna serve, {beside}): {o['moved']} moved in {t:.1f} s = "
          f"{o['moved'] / t:.1f} objects/s; {job['state']}, failed {o['failed']}, old copies kept for their lock or grace "
          f"{o['waitingForLock'] + o['awaitingGrace']}")
for phase in ("before", "during", "after"):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/frames-{phase}-*.json"))]
    if not runs:
        continue
    s = [list(r["scenarios"].values())[-1] for r in runs]
    med = lambda k: statistics.median(x["latency_ms"][k] for x in s)
    rate = statistics.median(x["items_per_s"] for x in s)
    print(f"frames {phase} ({len(s)} rounds of 2000, 4 clients): {rate:.0f} frames/s, "
          f"p50 {med('p50'):.1f} ms, p95 {med('p95'):.1f} ms, p99 {med('p99'):.1f} ms; errors {sum(x['errors'] for x in s)}")
EOF

# The store's own copy rate for the same objects (those now in the cold bucket).
python3 -m venv "$state/py" && "$state/py/bin/pip" install -q botocore >/dev/null
"$state/py/bin/python" - <<'EOF' | tee -a "$out/figures.txt"
import concurrent.futures, os, time
import botocore.session
s3 = botocore.session.get_session().create_client("s3", endpoint_url=os.environ["VNA_TEST_S3_ENDPOINT"])
versions, marker = [], {}
while True:
    page = s3.list_object_versions(Bucket="vna-cold", **marker)
    versions += [(v["Key"], v["VersionId"], v["Size"]) for v in page.get("Versions", [])]
    if not page.get("IsTruncated"):
        break
    marker = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
mb = sum(v[2] for v in versions) / 1e6
print(f"objects in the cold bucket: {len(versions)}, {mb:.0f} MB")
def server_side(v):
    s3.copy_object(Bucket="vna-copy", Key="c/" + v[0], CopySource={"Bucket": "vna-cold", "Key": v[0], "VersionId": v[1]})
def through_client(v):
    body = s3.get_object(Bucket="vna-cold", Key=v[0], VersionId=v[1])["Body"].read()
    s3.put_object(Bucket="vna-copy", Key="p/" + v[0], Body=body)
quarter = len(versions) // 4
parts = [versions[:quarter], versions[quarter:2 * quarter], versions[2 * quarter:3 * quarter], versions[3 * quarter:]]
for (name, f), (threads, part) in zip([("CopyObject", server_side), ("GetObject + PutObject", through_client)] * 2,
                                      [(1, parts[0]), (1, parts[1]), (4, parts[2]), (4, parts[3])]):
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(f, part))
    t = time.monotonic() - t0
    print(f"botocore {name}, {threads} thread(s): {len(part)} in {t:.1f} s = {len(part) / t:.1f} objects/s, "
          f"{sum(v[2] for v in part) / 1e6 / t:.1f} MB/s")
EOF
rm -f "$out"/frames-*.json.tmp
echo "reports in $out"
