#!/usr/bin/env bash
# Check incident-bot against the REAL jwt-pizza-factory and jwt-pizza-service, run on loopback (developer tool;
# CI has neither the repositories nor the internet, so tests/ pin what this observed against the simulator).
#
#   scripts/check-real-pair.sh <factory git dir or URL> <service git dir or URL>
#   (or REAL_FACTORY_GIT=… REAL_SERVICE_GIT=… scripts/check-real-pair.sh)
#
# Needs: git, node 20 + npm (the npm registry), openssl, the mysql client and a MariaDB/MySQL server
# (MYSQL_HOST, default 127.0.0.1:3306, user root, empty password), and `make install` done here.
# Everything goes to a temp dir outside the project (WORK, default mktemp -d); both node processes are stopped
# and both databases dropped on exit (KEEP=1 keeps them running and prints how to stop them).
# Steps (README "Checking against the real Factory"): set up both apps as the Factory's docs say, a vendor,
# a diner with a menu item, franchise and store; `incident-bot check` healthy; for each chaos type: PUT chaos
# (scheduled for tomorrow), check, start it now in the Factory's `chaos` table, check, the bot's recovery
# action (scripts/real_pair_recover.py), check again; then a drill (scripts/real_pair_drill.py) with
# --target factory --allow-real-factory --wait --recover. Exit 0 when every expectation held.
set -euo pipefail

FACTORY_GIT=${1:-${REAL_FACTORY_GIT:-}}
SERVICE_GIT=${2:-${REAL_SERVICE_GIT:-}}
if [[ -z "$FACTORY_GIT" || -z "$SERVICE_GIT" ]]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
BOT="$ROOT/.venv/bin/incident-bot"
[[ -x "$BOT" ]] || { echo "run 'make install' first" >&2; exit 2; }
WORK=${WORK:-$(mktemp -d /tmp/real-pair.XXXXXX)}
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${MYSQL_PORT:-3306}
FACTORY_PORT=${FACTORY_PORT:-3901}
SERVICE_PORT=${SERVICE_PORT:-3902}
SKIP_DRILL=${SKIP_DRILL:-0}
SUFFIX=$$
FDB=realpair_factory_$SUFFIX
SDB=realpair_service_$SUFFIX
F=http://127.0.0.1:$FACTORY_PORT
S=http://127.0.0.1:$SERVICE_PORT
sql() { mysql -h "$MYSQL_HOST" -P "$MYSQL_PORT" -uroot -N -B "$@"; }
log() { printf '\n== %s\n' "$*"; }
FAILS=0
expect() {  # expect <what> <actual> <wanted>
  if [[ "$2" == "$3" ]]; then echo "PASS $1: $2"; else echo "FAIL $1: got '$2', wanted '$3'"; FAILS=$((FAILS + 1)); fi
}
PIDS=()
cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "KEEP=1: still running (kill ${PIDS[*]:-}); databases $FDB $SDB; files in $WORK"
    return
  fi
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  sql -e "DROP DATABASE IF EXISTS $FDB; DROP DATABASE IF EXISTS $SDB" 2>/dev/null || true
}
trap cleanup EXIT
wait_http() {  # wait_http <url>: up to 30 s for any HTTP answer
  for _ in $(seq 60); do curl -s -o /dev/null "$1" && return 0; sleep 0.5; done
  echo "no answer from $1" >&2; return 1
}
json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

log "clone into $WORK"
git clone -q "$FACTORY_GIT" "$WORK/factory"
git clone -q "$SERVICE_GIT" "$WORK/service"
echo "factory $(git -C "$WORK/factory" log -1 --format='%h %cs %s')"
echo "service $(git -C "$WORK/service" log -1 --format='%h %cs %s')"

log "Factory on $F (database $FDB)"
cd "$WORK/factory/backend"
cat > config.js <<EOF
module.exports={db:{connection:{host:'$MYSQL_HOST',port:$MYSQL_PORT,user:'root',password:'',database:'$FDB',connectTimeout:60000}}};
EOF
openssl genrsa -out jwt.key 2048 2>/dev/null
openssl rsa -in jwt.key -pubout -out jwt.key.pub 2>/dev/null
npm ci --no-audit --no-fund --loglevel=error >"$WORK/factory-npm.log" 2>&1
node index.js "$FACTORY_PORT" >"$WORK/factory.log" 2>&1 &
PIDS+=($!)
wait_http "$F/api/docs"
sleep 2  # it creates its tables after it starts listening
curl -s -X POST "$F/api/vendor" -H 'Content-Type: application/json' -d '{"id":"realpair","name":"Real pair check"}' >/dev/null
KEY=$(sql "$FDB" -e "SELECT apiKey FROM vendor WHERE netId='realpair'")
echo "vendor realpair, key ${KEY:0:4}…${KEY: -4}"

log "Service on $S (database $SDB)"
cd "$WORK/service"
cat > src/config.js <<EOF
module.exports = {
  jwtSecret: 'real-pair-$SUFFIX',
  db: { connection: { host: '$MYSQL_HOST', port: $MYSQL_PORT, user: 'root', password: '', database: '$SDB', connectTimeout: 60000 }, listPerPage: 10 },
  factory: { url: '$F', apiKey: '$KEY' },
};
EOF
npm ci --no-audit --no-fund --loglevel=error >"$WORK/service-npm.log" 2>&1
(cd src && exec node index.js "$SERVICE_PORT") >"$WORK/service.log" 2>&1 &
PIDS+=($!)
wait_http "$S/"
sleep 2
(cd src && timeout 30 node init.js admin a@jwt.com admin >/dev/null)
ADMIN=$(curl -s -X PUT "$S/api/auth" -H 'Content-Type: application/json' -d '{"email":"a@jwt.com","password":"admin"}' | json "d['token']")
auth=(-H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json')
curl -s -X PUT "$S/api/order/menu" "${auth[@]}" -d '{"title":"Veggie","description":"A garden","image":"pizza1.png","price":0.0038}' >/dev/null
curl -s -X POST "$S/api/franchise" "${auth[@]}" -d '{"name":"pizzaPocket","admins":[{"email":"a@jwt.com"}]}' >/dev/null
curl -s -X POST "$S/api/franchise/1/store" "${auth[@]}" -d '{"franchiseId":1,"name":"SLC"}' >/dev/null
curl -s -X POST "$S/api/auth" -H 'Content-Type: application/json' -d '{"name":"diner","email":"d@jwt.com","password":"diner"}' >/dev/null

export FACTORY_URL=$F FACTORY_API_KEY=$KEY PIZZA_SERVICE_URL=$S PIZZA_DINER_EMAIL=d@jwt.com PIZZA_DINER_PASSWORD=diner
export DATABASE_URL="sqlite+aiosqlite:///$WORK/bot.db"
"$BOT" migrate >/dev/null
start_now() {
  sql "$FDB" -e "UPDATE chaos SET body=JSON_SET(body,'\$.startDate',JSON_VALUE(body,'\$.initiatedDate'))"
}
check() {  # check <label> <wanted verdict>
  local out rc=0
  out=$("$BOT" check) || rc=$?
  echo "$out"
  expect "$1 verdict" "$(sed -n 's/^verdict: \([a-z]*\).*/\1/p' <<<"$out")" "$2"
}

log "warm-up (a cold Factory's first orders took over 1 s on a loaded machine: the bot rightly calls that slow)"
TOKEN=$(curl -s -X PUT "$S/api/auth" -H 'Content-Type: application/json' -d '{"email":"d@jwt.com","password":"diner"}' | json "d['token']")
ORDER='{"franchiseId":1,"storeId":1,"items":[{"menuId":1,"description":"Veggie","price":0.0038}]}'
for _ in 1 2 3; do
  curl -s -o /dev/null -w 'service order %{http_code} %{time_total}s\n' -X POST "$S/api/order" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$ORDER"
done

log "healthy"
check healthy healthy

for chaos in fail throttle badjwt; do
  log "chaos $chaos"
  curl -s -X PUT "$F/api/vendor/chaos/$chaos" -H "Authorization: Bearer $KEY"; echo
  check "$chaos scheduled" healthy
  start_now
  check "$chaos running" down
  "$PY" "$ROOT/scripts/real_pair_recover.py" >"$WORK/recover-$chaos.json"
  expect "$chaos recovery" "$(json "d['recovery']['outcome']" <"$WORK/recover-$chaos.json")" resolved
  expect "$chaos after recovery" "$(json "d['after']['verdict']" <"$WORK/recover-$chaos.json")" healthy
  expect "$chaos vendor after fix" "$(curl -s "$F/api/vendor" -H "Authorization: Bearer $KEY" | json "d['chaos']['type']")" none
done

if [[ "$SKIP_DRILL" != 1 ]]; then
  log "drill fail --target factory --allow-real-factory --wait --recover"
  "$PY" "$ROOT/scripts/real_pair_drill.py" fail --target factory --allow-real-factory --wait --recover \
    --interval 5 --timeout 300 --json >"$WORK/drill.json" 2>"$WORK/drill.err" &
  DRILL=$!
  for _ in $(seq 60); do  # the drill's PUT schedules chaos for tomorrow; start it now once it is there
    [[ "$(curl -s "$F/api/vendor" -H "Authorization: Bearer $KEY" | json "(d.get('chaos') or {}).get('type')")" == fail ]] && break
    sleep 1
  done
  start_now
  rc=0; wait "$DRILL" || rc=$?
  expect "drill exit" "$rc" 0
  # The file holds two JSON documents: the drill as started, then its report.
  report=$("$PY" -c "import json,sys; t=sys.stdin.read(); i=t.index('\n}\n{')+3; d=json.loads(t[i:]); print(d['state'], d['recovery_outcome'], d['rto_met'])" <"$WORK/drill.json" || true)
  expect "drill report" "$report" "finished chaos ended True"
fi

log "Factory unreachable: the service's answer"
kill "${PIDS[0]}"; sleep 1
body=$(curl -s -w ' %{http_code}' -X POST "$S/api/order" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$ORDER")
expect "service without a Factory" "$(cut -c1-40 <<<"$body") …${body: -3}" '{"message":"fetch failed","stack":"TypeE …500'
check "Factory down" down

log "done: $FAILS expectation(s) failed; logs in $WORK"
[[ "$FAILS" == 0 ]]
