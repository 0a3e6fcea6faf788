# Shared by scripts/dev and scripts/test: the local tools and the AWS emulator.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EMULATOR_URL=http://127.0.0.1:4566
EMULATOR_PID=""
WATCH_PID=""
DOCS_PID=""
RESETS_PID=""
mkdir -p "$ROOT/.local"

# Pinned tools (moto server, cargo-lambda, cfn-lint, aws-sam-cli) in a project-local virtual
# environment, checkov in a second one, installed once and again whenever their requirements change.
# A virtual environment DIR with the pins of REQUIREMENTS, made anew whenever they change.
venv_from() {
  local dir="$ROOT/$1" requirements="$ROOT/$2" stamp want
  stamp="$dir/.requirements.sha256"
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing $2 into $1 ..."
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
}

bootstrap() {
  local stamp want
  venv_from .venv requirements-dev.txt
  # The template scanner pins a boto3 that aws-sam-cli's cannot live with: its own venv.
  venv_from .venv-scan requirements-scan.txt
  # The local web tools (scripts/web: the OpenAPI UI that /docs serves, the browser test's
  # library) from the npm registry, again whenever their lock file changes. Install scripts
  # stay off (swagger-ui-dist's only one reports usage).
  stamp="$ROOT/scripts/web/node_modules/.package-lock.sha256"
  want=$(sha256sum "$ROOT/scripts/web/package-lock.json" | cut -d' ' -f1)
  if [ ! -d "$ROOT/scripts/web/node_modules/swagger-ui-dist" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing the local web tools into scripts/web/node_modules ..."
    command -v npm > /dev/null || { echo "npm (Node.js) is needed: apt-get install nodejs npm" >&2; exit 1; }
    SCARF_ANALYTICS=false npm ci --prefix "$ROOT/scripts/web" --ignore-scripts --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
}

# Debian's chromium for the API reference's browser test (scripts/test), unless present.
bootstrap_browser() {
  command -v chromium > /dev/null && return
  echo "Installing chromium (apt) for the browser test ..."
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium > /dev/null
}

# Polls COMMAND every 0.1 s, TRIES times, until it succeeds: wait_until TRIES WHAT LOG COMMAND...
# Says WHAT did not start (see LOG) and fails when it never does.
wait_until() {
  local tries=$1 what=$2 log=$3
  shift 3
  for _ in $(seq "$tries"); do
    "$@" 2>/dev/null && return
    sleep 0.1
  done
  echo "$what did not start; see $log" >&2
  return 1
}

emulator_up() {
  curl -fs -o /dev/null "$EMULATOR_URL/moto-api/" 2>/dev/null
}

# Starts the emulator unless one already answers (then it is shared, never stopped here).
start_emulator() {
  if emulator_up; then
    echo "AWS emulator already running on $EMULATOR_URL"
    return
  fi
  # The call recorder (scripts/test's IAM check) writes under .local/.
  MOTO_RECORDER_FILEPATH="$ROOT/.local/emulator-calls.jsonl" \
    "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p 4566 > "$ROOT/.local/emulator.log" 2>&1 &
  EMULATOR_PID=$!
  wait_until 100 "The AWS emulator" .local/emulator.log emulator_up || exit 1
}

# Serves every function at the API's paths: cargo lambda watch PORT ENV_FILE [FLAGS...]
# (scripts/test passes --ignore-changes: a run tests the code it built).
start_api() {
  cargo lambda watch -A 127.0.0.1 -P "$1" --env-file "$2" "${@:3}" > "$ROOT/.local/api-$1.log" 2>&1 &
  WATCH_PID=$!
  wait_until 300 "cargo lambda watch" ".local/api-$1.log" curl -s -o /dev/null "http://127.0.0.1:$1/" || exit 1
}

# The local front door on PORT: the API reference at /docs, everything else forwarded to the
# API on UPSTREAM_PORT (scripts/docs_server.py): start_docs PORT UPSTREAM_PORT
start_docs() {
  "$ROOT/.venv/bin/python" "$ROOT/scripts/docs_server.py" "$1" "$2" > "$ROOT/.local/docs-$1.log" 2>&1 &
  DOCS_PID=$!
  wait_until 100 "The docs server" ".local/docs-$1.log" curl -fs -o /dev/null "http://127.0.0.1:$1/docs"
}

# Runs the password-resets worker over the reset queue every two seconds (no SQS event
# source runs locally): reset mails arrive as on AWS. ENV_FILE as for start_api.
start_reset_worker() {
  ( set -a; . "$1"; set +a
    while sleep 2; do "$ROOT/target/debug/password-resets" --poll > /dev/null || true; done
  ) > "$ROOT/.local/password-resets.log" 2>&1 &
  RESETS_PID=$!
}

# Stops what this script started (the process group of each background job).
stop_started() {
  for pid in $DOCS_PID $WATCH_PID $RESETS_PID $EMULATOR_PID; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

load_env() {
  set -a
  # shellcheck disable=SC1090
  . "$1"
  set +a
}

# The emulator's call recorder: start-recording, stop-recording, reset-recording.
recorder() {
  curl -fs -o /dev/null -X POST "$EMULATOR_URL/moto-api/recorder/$1"
}
