#!/usr/bin/env bash
# `make demo`: the local 8x8 simulator with its sample scenario, a few sample connections,
# and the console pointed at the simulator. Demo data and keys are kept apart from real ones
# (DEMO_DATA and DEMO_KEYRING move them elsewhere; bench/demo_start.py does); SIM_PORT is the
# simulator's port.
# `make demo-shell` (--shell): a shell whose switchboard commands use the demo's data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SIM_PORT=${SIM_PORT:-8088}
if ! [[ "$SIM_PORT" =~ ^[1-9][0-9]{0,4}$ ]] || (( SIM_PORT > 65535 )); then
  echo "make demo: SIM_PORT must be a port number from 1 to 65535, not '${SIM_PORT}'." >&2
  exit 2
fi
export SWITCHBOARD_DATABASE_URL="sqlite:///${DEMO_DATA:-data/demo}/switchboard-demo.db"
export SWITCHBOARD_KEYRING_FILE="${DEMO_KEYRING:-${HOME}/.config/switchboard/demo-keyring.json}"
export SWITCHBOARD_8X8_BASE_URL="http://127.0.0.1:${SIM_PORT}"

if [[ "${1:-}" == "--shell" ]]; then
  PATH="$(cd "$(dirname "$PY")" && pwd):${PATH}"
  export PATH
  echo "A shell on the demo's data: switchboard commands here use its database and keyring, and the" \
       "simulator on port ${SIM_PORT} while \`make demo\` runs. Type exit to leave." >&2
  exec "${SHELL:-bash}"
fi

listening() {  # whether something accepts connections on 127.0.0.1:$1 (bash's /dev/tcp: no process to start)
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
stop() {  # $1: what went wrong, ending with what to do about it
  echo "make demo: $1 make demo SIM_PORT=$((SIM_PORT % 65535 + 1))" >&2
  exit 1
}

# Checked first: otherwise the simulator cannot listen, and the demo asks whatever holds the port.
listening "$SIM_PORT" && stop "port ${SIM_PORT}, where the demo's 8x8 simulator listens, is taken by another \
program (\`ss -ltnp 'sport = :${SIM_PORT}'\` shows which). Stop that program, or choose another port:"
"$PY" -m lib simulator --port "$SIM_PORT" &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do  # until the simulator listens, or has stopped (e.g. the port taken meanwhile)
  kill -0 "$SIM_PID" 2>/dev/null || stop "the 8x8 simulator stopped before it listened on port ${SIM_PORT} (its error is above). If the port is taken, choose another:"
  listening "$SIM_PORT" && break
  sleep 0.1
done

"$PY" -m scripts.demo   # the sample connections, verified and saved, then tested once

echo "The command line on the demo's data: \`make demo-shell\` in another terminal."
"$PY" -m streamlit run serve.py --server.port "${PORT:-8501}"
