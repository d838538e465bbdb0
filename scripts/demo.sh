#!/usr/bin/env bash
# `make demo`: the local 8x8 simulator with its sample scenario, a few sample connections,
# and the console pointed at the simulator. Demo data and keys are kept apart from real ones
# (DEMO_DATA and DEMO_KEYRING move them elsewhere; bench/demo_start.py does).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SIM_PORT=${SIM_PORT:-8088}
export SWITCHBOARD_DATABASE_URL="sqlite:///${DEMO_DATA:-data/demo}/switchboard-demo.db"
export SWITCHBOARD_KEYRING_FILE="${DEMO_KEYRING:-${HOME}/.config/switchboard/demo-keyring.json}"
export SWITCHBOARD_8X8_BASE_URL="http://127.0.0.1:${SIM_PORT}"

"$PY" -m lib simulator --port "$SIM_PORT" &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do  # until the simulator listens (bash's /dev/tcp: no process to start)
  (exec 3<>"/dev/tcp/127.0.0.1/${SIM_PORT}") 2>/dev/null && break
  sleep 0.1
done

"$PY" -m scripts.demo   # the sample connections, verified and saved, then tested once

"$PY" -m streamlit run serve.py --server.port "${PORT:-8501}"
