#!/usr/bin/env bash
# Ingest with and without lifecycle policies (lifecycle-policies/ as lifecycle.policies_dir), the
# same release binary, a fresh data directory per run: C-STORE (400 CT instances, 1 association)
# and STOW-RS (batches of 10, 4 clients), 3 rounds, medians. Build first:
# cargo build --release -p vna -p vna-loadtest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=loadtest/out/lc; mkdir -p $out
run() { # mode round scenario
  local mode=$1 r=$2 scen=$3 data=$(mktemp -d -p loadtest/out)
  local env=(); [[ $mode == policies ]] && env=(VNA__LIFECYCLE__POLICIES_DIR=lifecycle-policies)
  env "${env[@]}" target/release/vna serve --data-dir $data --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0 > $data.ready 2> $data.log & pid=$!
  for _ in $(seq 100); do grep -q '^vna ready' $data.ready && break; sleep 0.1; done
  line=$(head -1 $data.ready); url="${line#*http=}"; url="${url%% *}/dicom-web"; dimse="${line##*dimse=}"
  if [[ $scen == cstore ]]; then
    target/release/vna-loadtest --json $out/$mode-cstore-r$r.json cstore --url $url --dimse $dimse --server-pid $pid --instances 400 --associations 1 > /dev/null
  else
    target/release/vna-loadtest --json $out/$mode-stow-r$r.json stow --url $url --server-pid $pid --instances 400 --batch 10 --concurrency 4 > /dev/null
  fi
  kill $pid; wait $pid 2>/dev/null || true; rm -rf $data $data.ready $data.log
}
for r in 1 2 3; do for s in cstore stow; do for m in off policies; do run $m $r $s; done; done; done
python3 - <<'PY'
import json,glob,statistics,os
rows={}
for f in glob.glob("loadtest/out/lc/*.json"):
    mode,scen,_=os.path.basename(f)[:-5].split("-")
    s=list(json.load(open(f))["scenarios"].values())[0]
    cpu=s["server"]["cpu_s"]*1000/max(s["items"],1) if s.get("server") else float("nan")
    rows.setdefault((scen,mode),[]).append((s["items_per_s"],s["latency_ms"]["p95"],cpu,s["errors"]))
for scen in ("cstore","stow"):
    for mode in ("off","policies"):
        v=rows.get((scen,mode),[])
        if not v: continue
        print(scen,mode,"n=%d"%len(v),"rate=%.0f"%statistics.median(x[0] for x in v),"p95=%.1f"%statistics.median(x[1] for x in v),"cpu_ms=%.2f"%statistics.median(x[2] for x in v),"errors=%d"%sum(x[3] for x in v), "range=%s"%sorted(round(x[0]) for x in v))
PY
