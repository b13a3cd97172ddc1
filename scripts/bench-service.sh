#!/usr/bin/env bash
# Benchmark of the real `elasticrds run` binary (not a test): CLUSTERS clusters x REPLICAS
# replicas x 3 metrics on moto (RDS) + ministack (CloudWatch), both on 127.0.0.1 random ports.
# Populates moto with the masters and replicas, ministack with 10 minutes of CPU, connections and
# replica-lag datapoints for every replica, runs `elasticrds run --interval INTERVAL` for DURATION
# seconds, and prints: ticks, AWS calls per tick (the daemon's own
# counters, and the requests moto actually served), tick duration, CPU time and peak resident
# memory of the daemon.
#
#   scripts/bench-service.sh                 # release build, 100 x 15, 110 s at 60 s intervals
#   PROFILE=debug CLUSTERS=10 scripts/bench-service.sh
#
# Needs the emulators in .venv (scripts/test.sh --setup-only installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
CLUSTERS="${CLUSTERS:-100}"
REPLICAS="${REPLICAS:-15}"
# Ticks start every INTERVAL; with 100 x 15 on moto a tick takes about 25 s of wall time
# (moto's own speed), so ticks at 0 s and 60 s are both over, and the third not yet started,
# when the counters are read at DURATION: the per-tick figures count whole ticks only.
DURATION="${DURATION:-110}"
INTERVAL="${INTERVAL:-60s}"
PROFILE="${PROFILE:-release}"
VENV="$ROOT/.venv"
[[ -x "$VENV/bin/moto_server" && -x "$VENV/bin/ministack" ]] || {
    echo "emulators missing: run scripts/test.sh --setup-only" >&2; exit 1; }

if [[ "$PROFILE" == "release" ]]; then cargo build --release --quiet; else cargo build --quiet; fi
BIN="$ROOT/target/$PROFILE/elasticrds"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 300); do
        "$VENV/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.3
    done
    echo "port $1 never opened" >&2; return 1
}

MOTO_PORT="$(free_port)"; CW_PORT="$(free_port)"; HTTP_PORT="$(free_port)"
(cd "$WORK" && exec "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1) &
PIDS+=($!)
(cd "$WORK" && BIND_HOST=127.0.0.1 IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 SERVICES=cloudwatch \
    GATEWAY_PORT="$CW_PORT" LOG_LEVEL=WARNING exec "$VENV/bin/ministack" >"$WORK/ministack.log" 2>&1) &
PIDS+=($!)
wait_port "$MOTO_PORT"; wait_port "$CW_PORT"

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
    AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
    AWS_ENDPOINT_URL_RDS="http://127.0.0.1:$MOTO_PORT" \
    AWS_ENDPOINT_URL_CLOUDWATCH="http://127.0.0.1:$CW_PORT"
unset AWS_PROFILE AWS_ENDPOINT_URL || true

echo "populating: $CLUSTERS clusters x $REPLICAS replicas (moto), 3 metrics x 10 min (ministack)"
"$VENV/bin/python" - "$WORK" "$CLUSTERS" "$REPLICAS" <<'PY'
import datetime, os, sys
import boto3
work, clusters, replicas = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rds = boto3.client("rds", endpoint_url=os.environ["AWS_ENDPOINT_URL_RDS"])
cw = boto3.client("cloudwatch", endpoint_url=os.environ["AWS_ENDPOINT_URL_CLOUDWATCH"])
os.makedirs(f"{work}/policies")
cfg = []
for c in range(clusters):
    name = f"c{c:03d}"
    rds.create_db_instance(DBInstanceIdentifier=f"{name}-m", DBInstanceClass="db.r6g.large",
                           Engine="mysql", MasterUsername="admin",
                           MasterUserPassword="password123", AllocatedStorage=20)
    cfg.append(f"{name}:\n  master_node: {{identifier: snap-{name}, instance_id: {name}-m, instance_class: db.r6g.large}}\n  replica_nodes:\n")
    for r in range(replicas):
        rid = f"{name}-r{r:02d}"
        rds.create_db_instance_read_replica(DBInstanceIdentifier=rid,
                                            SourceDBInstanceIdentifier=f"{name}-m",
                                            DBInstanceClass="db.r6g.large")
        cfg.append(f"    - {{id: {rid}, instance_class: db.r6g.large}}\n")
    with open(f"{work}/policies/{name}.yaml", "w") as f:
        f.write(f"cluster: {name}\nmin_replicas: 1\nmax_replicas: {replicas}\nrules:\n"
                "  - metric: cpu\n    target: 60\n"
                "  - metric: connections\n    target: 500\n"
                "  - metric: replica_lag\n    statistic: Maximum\n    aggregation: max\n"
                "    above: 30\n    add: 1\n")
with open(f"{work}/elasticrds.yaml", "w") as f:
    f.write("".join(cfg))
now = datetime.datetime.now(datetime.timezone.utc).replace(second=5, microsecond=0)
batch = []
def flush():
    if batch:
        cw.put_metric_data(Namespace="AWS/RDS", MetricData=list(batch))
        batch.clear()
for c in range(clusters):
    for r in range(replicas):
        rid = f"c{c:03d}-r{r:02d}"
        for metric, value in (("CPUUtilization", 58.0), ("DatabaseConnections", 100.0), ("ReplicaLag", 0.5)):
            for k in range(1, 11):
                batch.append({"MetricName": metric, "Value": value,
                              "Timestamp": now - datetime.timedelta(minutes=k),
                              "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": rid}]})
                if len(batch) == 1000:
                    flush()
flush()
PY

before=$(grep -c '"POST / HTTP' "$WORK/moto.log" || true)
echo "running: $BIN run --interval $INTERVAL for ${DURATION}s"
"$BIN" --config "$WORK/elasticrds.yaml" run \
    --policies "$WORK/policies" --interval "$INTERVAL" --listen "127.0.0.1:$HTTP_PORT" \
    --log-format json 2>"$WORK/run.log" &
RUN_PID=$!
sleep "$DURATION"
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/metrics.txt" 2>/dev/null \
    || "$VENV/bin/python" -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/metrics').read().decode())" >"$WORK/metrics.txt"
# The daemon's own CPU time (utime + stime, clock ticks) and peak resident memory, read from
# /proc before it is stopped.
clk=$(getconf CLK_TCK)
read -r ut st < <(awk '{ print $14, $15 }' "/proc/$RUN_PID/stat")
hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$RUN_PID/status")
rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RUN_PID/status")
kill -TERM "$RUN_PID"
wait "$RUN_PID" || { echo "run exited non-zero" >&2; tail -20 "$WORK/run.log" >&2; exit 1; }
after=$(grep -c '"POST / HTTP' "$WORK/moto.log" || true)

m() { awk -v k="$1" 'index($0, k) == 1 { print $NF }' "$WORK/metrics.txt" | head -1; }
ok=$(m 'elasticrds_ticks_total{result="ok"}'); err=$(m 'elasticrds_ticks_total{result="error"}')
ticks=$(( ${ok%.*} + ${err%.*} ))
desc=$(m 'elasticrds_aws_calls_total{operation="DescribeDBInstances",service="rds"}')
gmd=$(m 'elasticrds_aws_calls_total{operation="GetMetricData",service="cloudwatch"}')
tags=$(m 'elasticrds_aws_calls_total{operation="AddTagsToResource",service="rds"}')
dsum=$(m 'elasticrds_tick_duration_seconds_sum'); dcount=$(m 'elasticrds_tick_duration_seconds_count')
decisions=$(grep -c '"message":"decision"' "$WORK/run.log" || true)
echo
echo "== elasticrds run: $CLUSTERS clusters x $REPLICAS replicas x 3 metrics ($PROFILE build)"
echo "ticks:                 $ticks (ok $ok, error $err); decisions logged: $decisions"
awk -v t="$ticks" -v d="$desc" -v g="$gmd" -v a="${tags:-0}" 'BEGIN {
    printf "DescribeDBInstances:   %s in %d ticks = %.1f per tick (goal <= %d)\n", d, t, d/t, '"$(( (CLUSTERS*(REPLICAS+1)+99)/100 ))"'
    printf "GetMetricData:         %s in %d ticks = %.1f per tick (goal <= %d)\n", g, t, g/t, '"$(( (CLUSTERS*REPLICAS*3+499)/500 ))"'
    printf "AddTagsToResource:     %s in %d ticks (state tags; first tick writes every cluster)\n", a, t }'
echo "moto requests served:  $(( after - before )) (all RDS calls, state-tag ARN look-ups included)"
awk -v s="$dsum" -v c="$dcount" 'BEGIN { printf "tick duration:         %.0f ms mean over %d ticks (wall, AWS round trips included)\n", 1000*s/c, c }'
awk -v u="$ut" -v s="$st" -v c="$clk" -v t="$ticks" 'BEGIN {
    printf "cpu time:              %.2f s user + %.2f s system over the run\n", u/c, s/c
    printf "cpu per tick:          %.0f ms (user+sys of the whole run / ticks)\n", 1000*(u+s)/c/t }'
awk -v h="$hwm_kb" -v r="$rss_kb" 'BEGIN { printf "resident memory:       %.1f MB peak (VmHWM), %.1f MB at the end (goal <= 30 MB)\n", h/1024, r/1024 }'
