#!/usr/bin/env bash
# Where ingest spends its time (issue 17): the release server (embedded defaults: SQLite, the
# filesystem tier) under a C-STORE storm (one association) and a STOW-RS storm (batches of 10,
# 4 clients), for 9 KB instances (64×64) and 0.5 MB CT (512×512). For each scenario:
#   - a CPU profile of the server (perf record -g at 499 Hz, whole run) rendered as a flame graph
#     (inferno, installed by this script into loadtest/out/tools) into loadtest/flamegraphs/;
#   - in a second run, the server's syscalls counted (strace -f -c): fsync, fdatasync, rename,
#     openat, write… per instance stored.
# Build first: cargo build --release -p vna -p vna-loadtest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=loadtest/out/profile; mkdir -p $out loadtest/flamegraphs
tools=loadtest/out/tools/bin
[[ -x $tools/inferno-flamegraph ]] || cargo install --locked inferno --root loadtest/out/tools >/dev/null
n=${N:-2000}
start() { # -> sets pid, base, dimse, data
  data=$(mktemp -d -p loadtest/out)
  target/release/vna serve --data-dir $data --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0 > $data.ready 2> $data.log & pid=$!
  for _ in $(seq 100); do grep -q '^vna ready' $data.ready && break; sleep 0.1; done
  line=$(head -1 $data.ready); base="${line#*http=}"; base="${base%% *}"; dimse="${line##*dimse=}"
}
stop() { kill $pid; wait $pid 2>/dev/null || true; rm -rf $data $data.ready $data.log; }
load() { # scenario size json
  if [[ $1 == cstore ]]; then
    target/release/vna-loadtest --json $3 cstore --url $base/dicom-web --dimse $dimse --server-pid $pid --instances $n --associations 1 --image-size $2 > /dev/null
  else
    target/release/vna-loadtest --json $3 stow --url $base/dicom-web --server-pid $pid --instances $n --batch 10 --concurrency 4 --image-size $2 > /dev/null
  fi
}
for scen in cstore stow; do for size in 64 512; do
  name=$scen-$([[ $size == 64 ]] && echo 9k || echo ct)
  start
  perf record -F 499 -g -p $pid -o $out/$name.perf.data 2> /dev/null & perf=$!
  sleep 0.5
  load $scen $size $out/$name.json
  kill -INT $perf; wait $perf 2>/dev/null || true
  perf script -i $out/$name.perf.data 2> /dev/null | $tools/inferno-collapse-perf > $out/$name.folded
  $tools/inferno-flamegraph --title "vna $scen, $n instances ($([[ $size == 64 ]] && echo '9 KB' || echo '0.5 MB CT'))" < $out/$name.folded > loadtest/flamegraphs/$name.svg
  stop
  start
  strace -f -c -o $out/$name.strace -p $pid 2> /dev/null & st=$!
  sleep 0.5
  load $scen $size $out/$name-strace.json
  kill -INT $st; wait $st 2>/dev/null || true
  stop
  python3 - "$out" "$name" "$n" <<'PY'
import json, sys
out, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = list(json.load(open(f"{out}/{name}.json"))["scenarios"].values())[0]
cpu = s["server"]["cpu_s"] * 1000 / max(s["items"], 1)
calls = {}
for line in open(f"{out}/{name}.strace"):
    f = line.split()
    if len(f) >= 5 and f[-1].isidentifier() and f[3].isdigit():
        calls[f[-1]] = int(f[3])
    elif len(f) >= 4 and f[-1].isidentifier() and f[2].isdigit() and f[3].isidentifier():
        calls[f[-1]] = int(f[2])
per = lambda k: calls.get(k, 0) / n
print(f"{name}: {s['items_per_s']:.0f} inst/s, server CPU {cpu:.2f} ms/instance; per instance: "
      + ", ".join(f"{k} {per(k):.2f}" for k in ("fsync", "fdatasync", "rename", "openat", "write", "pwrite64", "read", "recvfrom", "sendto", "futex")))
PY
done; done
