#!/usr/bin/env bash
# C-STORE over plain TCP and over DICOM TLS (PS3.15 Annex B, rustls, TLS 1.3), the same release
# binary, a fresh data directory each time, the 0.5 MB CT corpus and 9 KB instances over 1 and 4
# associations, ROUNDS rounds. Certificates are made here with openssl. Figures: one JSON report
# per run under OUT (default loadtest/out/dimse-tls), and a summary table on stdout.
#
#   loadtest/dimse-tls.sh [ROUNDS] [INSTANCES]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-3}" instances="${2:-400}"
out="${OUT:-loadtest/out/dimse-tls}"
vna=target/release/vna lt=target/release/vna-loadtest
[[ -x $vna && -x $lt ]] || { echo "build first: cargo build --release -p vna -p vna-loadtest" >&2; exit 2; }
work="$(mktemp -d)"; trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$out"
(cd "$work"
 openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
 openssl req -new -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=srv 2>/dev/null
 echo "subjectAltName=IP:127.0.0.1" > ext.cnf
 openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out srv.pem 2>/dev/null)
printf 'version = 1\n[dimse]\ntls_cert_file = "%s/srv.pem"\ntls_key_file = "%s/srv.key"\n' "$work" "$work" > "$work/tls.toml"
printf 'version = 1\n' > "$work/plain.toml"

run() { # mode round size assoc
    local mode=$1 r=$2 size=$3 assoc=$4 data="$work/data-$1-$2-$3-$4"
    "$vna" --config "$work/$mode.toml" serve --data-dir "$data" --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0 \
        > "$work/ready" 2> "$work/vna.log" & pid=$!
    for _ in $(seq 100); do grep -q '^vna ready' "$work/ready" && break; sleep 0.1; done
    local line; line="$(head -1 "$work/ready")"
    local url="${line#*http=}"; url="${url%% *}/dicom-web"; local dimse="${line##*dimse=}"
    local tls=(); [[ $mode == tls ]] && tls=(--dimse-tls-ca "$work/ca.pem")
    "$lt" --json "$out/$mode-$size-a$assoc-r$r.json" cstore --url "$url" --dimse "$dimse" --server-pid "$pid" "${tls[@]}" \
        --instances "$instances" --image-size "$size" --associations "$assoc" > /dev/null
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    rm -rf "$data"
}
for r in $(seq "$rounds"); do
    for size in 512 64; do for assoc in 1 4; do for mode in plain tls; do run "$mode" "$r" "$size" "$assoc"; done; done; done
done
python3 - "$out" <<'PY'
import json, statistics, sys, glob, os
rows = {}
for f in glob.glob(os.path.join(sys.argv[1], "*.json")):
    mode, size, assoc, _ = os.path.basename(f)[:-5].split("-")
    s = json.load(open(f))["scenarios"]["cstore"]
    cpu = s["server"]["cpu_s"] * 1000 / max(s["items"], 1) if s.get("server") else None
    rows.setdefault((size, assoc, mode), []).append({"rate": s["items_per_s"], "cpu": cpu, "p95": s["latency_ms"]["p95"],
                                                     "rss": (s.get("server") or {}).get("peak_rss_sampled_mb")})
print("| instances | associations | plain inst/s | TLS inst/s | ratio | p95 ms plain / TLS | server CPU ms/inst plain / TLS | peak RSS MB plain / TLS |")
print("|---|---|---|---|---|---|---|---|")
for size in ("512", "64"):
    for assoc in ("a1", "a4"):
        def med(mode, key):
            vals = [x.get(key) for x in rows.get((size, assoc, mode), []) if x.get(key) is not None]
            return statistics.median(vals) if vals else float("nan")
        p, t = med("plain", "rate"), med("tls", "rate")
        label = "0.5 MB CT" if size == "512" else "9 KB"
        print(f"| {label} | {assoc[1:]} | {p:.0f} | {t:.0f} | {t / p:.2f}x | {med('plain', 'p95'):.1f} / {med('tls', 'p95'):.1f} "
              f"| {med('plain', 'cpu'):.2f} / {med('tls', 'cpu'):.2f} | {med('plain', 'rss'):.0f} / {med('tls', 'rss'):.0f} |")
PY
