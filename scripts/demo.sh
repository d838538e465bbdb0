#!/usr/bin/env bash
# `make demo`: the local 8x8 simulator with its sample scenario, a few sample connections,
# and the console pointed at the simulator. Demo data and keys are kept apart from real ones.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SIM_PORT=${SIM_PORT:-8088}
export SWITCHBOARD_DATABASE_URL="sqlite:///data/demo/switchboard-demo.db"
export SWITCHBOARD_KEYRING_FILE="${HOME}/.config/switchboard/demo-keyring.json"
export SWITCHBOARD_8X8_BASE_URL="http://127.0.0.1:${SIM_PORT}"

"$PY" -m lib simulator --port "$SIM_PORT" &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  "$PY" -c "import httpx,sys; httpx.get('${SWITCHBOARD_8X8_BASE_URL}/_sim/stats')" 2>/dev/null && break
  sleep 0.2
done

"$PY" -m lib db upgrade
add() {  # name client-id secret [options...]; an existing connection is left as it is
  local name=$1 id=$2 secret=$3; shift 3
  if "$PY" -m lib connections list --json | grep -q "\"name\": \"$name\""; then return; fi
  printf '%s\n' "$secret" | "$PY" -m lib connections add --name "$name" --client-id "$id" --secret-stdin "$@"
}
add "Acme - all products" demo-everything demo-secret-everything --environment production \
  --products cc_realtime_analytics,cc_historical_analytics,cloud_storage,quality_management,cc_chat \
  --analytics-region us --storage-region us-east --qm-region us-east --chat-region us \
  --tenant-id acme01 --pbx acmepbx
add "EuroTrade" demo-europe-multi-tenant demo-secret-europe --environment production \
  --products cc_realtime_analytics,cc_historical_analytics,cloud_storage,cc_chat \
  --analytics-region eu --storage-region uk --chat-region eu --tenant-id eurotrade01
add "Storage archive" demo-storage-only demo-secret-storage --environment staging \
  --products cloud_storage,cc_chat --storage-region ap --chat-region ap --tenant-id archive01
add "Flaky lab" demo-flaky demo-secret-flaky --environment lab \
  --products cc_realtime_analytics,quality_management,cc_chat \
  --analytics-region ca --qm-region ca --chat-region ca --tenant-id flaky01 --pbx flakypbx
"$PY" -m lib check --all || true   # some demo products fail on purpose

"$PY" -m streamlit run serve.py --server.port "${PORT:-8501}"
