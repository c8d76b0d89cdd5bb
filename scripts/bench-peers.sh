#!/usr/bin/env bash
# meshq against Redis and NATS JetStream, side by side (`make bench-peers`;
# docs/performance.md, "Against Redis and NATS JetStream").
#
# Each system runs as three members on loopback, in a temporary directory:
#   meshq  3 meshqd nodes, fsync = always; the load goes to the leader
#          (and, at 1x1, also to a follower, which relays to the leader)
#   redis  a primary and two replicas (--replicaof), --save '' --appendonly no;
#          each request is LPUSH q <payload> then WAIT 1 1000 (one replica has it)
#   nats   a 3-server JetStream cluster; stream BENCH (subject bench.q, file
#          storage, 3 replicas); each request is a PUB answered by a PubAck;
#          the load goes to the server that leads the stream
# One C client (bench/loadgen.c) drives all three. The loads (LOADS, default
# "1x1 16x1 64x16": connections x requests in flight per connection) run for
# SECONDS each, in ROUNDS rounds; within a round the systems alternate
# (meshq, redis, nats, then the next load). The table gives, per load and
# system, the median over rounds and the min-max range.
#
# Environment (all optional):
#   ROUNDS=3 SECONDS=5 LOADS="1x1 16x1 64x16" PAYLOAD=100
#   MESHQD=.build/release/meshqd   the meshqd binary (make bench-peers passes the release build)
#   OUT=bench-peers-out/<date>     where runs.txt (raw per-run results), table.txt and the logs go
#   MESHQ_PORT_BASE=17000 REDIS_PORT_BASE=18000 NATS_PORT_BASE=19000
#     (meshq clients base+1..3, peers base+101..103; redis base+1..3;
#      nats clients base+1..3, routes base+101..103; all on 127.0.0.1)
#   CC=cc
# Installs redis-server, nats-server (and gcc when there is no cc) with
# apt-get when they are missing. Stops everything it started on exit, error
# or Ctrl-C, and removes its temporary directory.

# SECONDS is bash's own clock: read the value given in the environment
# before it ticks (bash exports it only when it came from the environment).
run_seconds=$(printenv SECONDS || true)
run_seconds=${run_seconds:-5}

set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
loads=${LOADS:-"1x1 16x1 64x16"}
payload=${PAYLOAD:-100}
meshqd=${MESHQD:-$here/.build/release/meshqd}
out=${OUT:-bench-peers-out/$(date +%Y%m%d-%H%M%S)}
mq_base=${MESHQ_PORT_BASE:-17000}
rd_base=${REDIS_PORT_BASE:-18000}
nt_base=${NATS_PORT_BASE:-19000}
cc=${CC:-cc}

log() { printf '%s\n' "bench-peers: $*" >&2; }
die() { log "$*"; exit 1; }

[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$rounds'"
[[ $run_seconds =~ ^[0-9]+([.][0-9]+)?$ ]] && [[ $run_seconds != 0 ]] || die "SECONDS must be a positive number, not '$run_seconds'"
[[ $payload =~ ^[1-9][0-9]*$ ]] || die "PAYLOAD must be a positive integer"
for l in $loads; do [[ $l =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "bad load '$l' (want CONNECTIONSxPIPELINE)"; done
[[ -x $meshqd ]] || die "no meshqd at $meshqd (make release, or MESHQD=...)"

# ---- packages, installed when missing (as the Makefile's deps targets do) ----
missing=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v "$cc" >/dev/null || missing+=(gcc)
if ((${#missing[@]})); then
	log "installing ${missing[*]} (needs root)"
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
	[[ " ${missing[*]} " == *" gcc "* ]] && cc=gcc
fi

# ---- everything we start, stopped on exit ----
pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-peers.XXXXXX")
mkdir -p "$out"
out=$(cd "$out" && pwd)

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pid i
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ -d $tmp ]]; then
		mkdir -p "$out/logs"
		cp "$tmp"/*/*.log "$out/logs/" 2>/dev/null || true
		if ((rc != 0)); then
			local f
			for f in "$out"/logs/*.log; do
				[[ -e $f ]] || continue
				echo "--- tail of $f" >&2
				tail -n 5 "$f" >&2
			done
		fi
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # name logfile command...
	local name=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 &
	pids+=($!)
	log "started $name (pid $!)"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for p in $((mq_base + 1)) $((mq_base + 2)) $((mq_base + 3)) $((mq_base + 101)) $((mq_base + 102)) $((mq_base + 103)) \
	$((rd_base + 1)) $((rd_base + 2)) $((rd_base + 3)) \
	$((nt_base + 1)) $((nt_base + 2)) $((nt_base + 3)) $((nt_base + 101)) $((nt_base + 102)) $((nt_base + 103)); do
	port_free "$p" || die "127.0.0.1:$p is in use (set MESHQ_PORT_BASE / REDIS_PORT_BASE / NATS_PORT_BASE)"
done

# ---- the load generator ----
loadgen=$tmp/loadgen
"$cc" -O2 -Wall -Wextra -o "$loadgen" "$here/bench/loadgen.c"

# ---- meshq: 3 nodes, fsync = always ----
mkdir -p "$tmp/meshq"
conf=$tmp/meshq/meshq.conf
{
	echo "[cluster]"
	echo "fsync = always"
	echo "# the runs enqueue and never dequeue: room for every run's tasks"
	echo "max_memory_mb = 8192"
	for n in 1 2 3; do
		echo
		echo "[node.$n]"
		echo "peer = 127.0.0.1:$((mq_base + 100 + n))"
		echo "client = 127.0.0.1:$((mq_base + n))"
		echo "data_dir = $tmp/meshq/data$n"
	done
} >"$conf"
"$meshqd" --config "$conf" --id 1 --check >/dev/null
for n in 1 2 3; do
	start "meshqd $n" "$tmp/meshq/meshqd$n.log" "$meshqd" --config "$conf" --id "$n"
done

# ---- redis: a primary and two replicas ----
mkdir -p "$tmp/redis"
for n in 1 2 3; do
	mkdir -p "$tmp/redis/$n"
	args=(--port $((rd_base + n)) --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis/$n" --daemonize no)
	((n == 1)) || args+=(--replicaof 127.0.0.1 $((rd_base + 1)))
	start "redis-server $n" "$tmp/redis/redis$n.log" redis-server "${args[@]}"
done

# ---- nats: 3 JetStream servers ----
mkdir -p "$tmp/nats"
for n in 1 2 3; do
	routes=()
	for m in 1 2 3; do ((m == n)) || routes+=("nats://127.0.0.1:$((nt_base + 100 + m))"); done
	start "nats-server $n" "$tmp/nats/nats$n.log" nats-server -a 127.0.0.1 -p $((nt_base + n)) -n "n$n" \
		-js -sd "$tmp/nats/store$n" --cluster_name bench --cluster "nats://127.0.0.1:$((nt_base + 100 + n))" \
		--routes "$(IFS=,; echo "${routes[*]}")"
done

alive() { local pid; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || die "a server exited early (pid $pid)"; done; }

# ---- wait for each system, bounded ----
# meshq: one connection to node 1, STATUS every 0.1 s until it names a leader
# and that leader hears both peers; then each node's role from its STATUS.
status_of() { # port -> one STATUS line
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'STATUS\n' >&3
		IFS= read -r -t 5 line <&3 && printf '%s\n' "$line"
	) 2>/dev/null
}
wait_meshq() {
	local i line
	for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$((mq_base + 1))") 2>/dev/null && break; alive; sleep 0.1; done
	(
		exec 3<>"/dev/tcp/127.0.0.1/$((mq_base + 1))" || exit 1
		for ((i = 0; i < 300; i++)); do
			printf 'STATUS\n' >&3
			IFS= read -r -t 5 line <&3 || exit 1
			[[ $line =~ \ leader=[0-9]+\  ]] && exit 0
			sleep 0.1
		done
		exit 1
	) 2>/dev/null || die "meshq: no leader after 30 s"
	local n
	for ((i = 0; i < 100; i++)); do
		mq_leader= mq_follower=
		for n in 1 2 3; do
			line=$(status_of $((mq_base + n))) || true
			[[ $line == *" role=leader "* && $line == *" peers_up=2 "* ]] && mq_leader=$((mq_base + n))
			[[ $line == *" role=follower "* && -z $mq_follower ]] && mq_follower=$((mq_base + n))
		done
		[[ -n $mq_leader && -n $mq_follower ]] && return 0
		alive
		sleep 0.1
	done
	die "meshq: no leader with both peers up after 10 s"
}

wait_redis() {
	local i
	for ((i = 0; i < 300; i++)); do
		if redis-cli -p $((rd_base + 1)) info replication 2>/dev/null | grep -q '^connected_slaves:2'; then
			local n ok=1
			for n in 2 3; do
				redis-cli -p $((rd_base + n)) info replication 2>/dev/null | grep -q '^master_link_status:up' || ok=0
			done
			((ok)) && return 0
		fi
		alive
		sleep 0.1
	done
	die "redis: the primary does not see 2 connected replicas after 30 s"
}

stream_json='{"name":"BENCH","subjects":["bench.q"],"storage":"file","num_replicas":3}'
wait_nats() {
	local i reply leader
	for ((i = 0; i < 60; i++)); do
		reply=$("$loadgen" --port $((nt_base + 1)) --timeout 1 --nats-request '$JS.API.STREAM.CREATE.BENCH' \
			--data "$stream_json" 2>/dev/null) || reply=
		[[ $reply == *'"config"'* && $reply != *'"error"'* ]] && break
		alive
		sleep 0.5
	done
	[[ $reply == *'"config"'* && $reply != *'"error"'* ]] || die "nats: could not create stream BENCH: ${reply:-no reply}"
	for ((i = 0; i < 100; i++)); do
		reply=$("$loadgen" --port $((nt_base + 1)) --timeout 1 --nats-request '$JS.API.STREAM.INFO.BENCH' 2>/dev/null) || reply=
		if [[ $reply =~ \"leader\":\"n([123])\" ]]; then
			leader=${BASH_REMATCH[1]}
			# both followers caught up
			if [[ $(grep -o '"current":true' <<<"$reply" | wc -l) -ge 2 ]]; then
				nt_leader=$((nt_base + leader))
				nt_info=$reply
				return 0
			fi
		fi
		alive
		sleep 0.2
	done
	die "nats: stream BENCH has no leader with 2 current replicas: ${reply:-no reply}"
}

wait_meshq
log "meshq: leader on 127.0.0.1:$mq_leader, a follower on 127.0.0.1:$mq_follower"
wait_redis
log "redis: primary 127.0.0.1:$((rd_base + 1)) with 2 replicas"
wait_nats
log "nats: stream BENCH led by the server on 127.0.0.1:$nt_leader"

# ---- the runs ----
runs=$out/runs.txt
{
	echo "# bench-peers $(date -u +%FT%TZ) rounds=$rounds seconds=$run_seconds payload=$payload loads=\"$loads\""
	echo "# $(uname -srm), $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# meshqd $meshqd; script from the tree at $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "# $(redis-server --version)"
	echo "# $(nats-server --version 2>&1)"
	echo "# nats stream: $nt_info"
} >"$runs"

run() { # round load target system port
	local round=$1 load=$2 target=$3 system=$4 port=$5 line
	local c=${load%x*} p=${load#*x}
	log "round $round/$rounds: $load $target"
	if line=$("$loadgen" --system "$system" --port "$port" --connections "$c" --pipeline "$p" \
		--seconds "$run_seconds" --payload-bytes "$payload" --timeout 10); then
		echo "round=$round load=$load target=$target $line" >>"$runs"
		log "  $line"
	else
		echo "round=$round load=$load target=$target failed=1" >>"$runs"
		log "  failed"
	fi
}

for ((r = 1; r <= rounds; r++)); do
	for load in $loads; do
		run "$r" "$load" meshq meshq "$mq_leader"
		run "$r" "$load" redis redis $((rd_base + 1))
		run "$r" "$load" nats nats "$nt_leader"
		if [[ $load == 1x1 ]]; then run "$r" "$load" meshq-follower meshq "$mq_follower"; fi
	done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$runs"

# ---- the table: medians over rounds, min-max ----
table() {
	awk -v loads="$loads" '
	function fmt_ms(v) { return v >= 100 ? sprintf("%.0f", v) : v >= 10 ? sprintf("%.1f", v) : v >= 1 ? sprintf("%.2f", v) : sprintf("%.3f", v) }
	function fmt_tp(v) { return sprintf("%.0f", v) }
	function isort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
	function stat(key, field, kind,   a, n, i, med) {
		n = cnt[key]; if (n == 0) return "-"
		for (i = 1; i <= n; i++) a[i] = val[key, field, i] + 0
		isort(a, n)
		med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		medians[key, field] = med
		if (kind == "tp") return fmt_tp(med) " (" fmt_tp(a[1]) "-" fmt_tp(a[n]) ")"
		return fmt_ms(med) " (" fmt_ms(a[1]) "-" fmt_ms(a[n]) ")"
	}
	/^#/ { next }
	{
		delete kv
		for (i = 1; i <= NF; i++) { split($i, pair, "="); kv[pair[1]] = pair[2] }
		key = kv["load"] SUBSEP kv["target"]
		if (kv["failed"] == 1) { failed[key]++; next }
		c = ++cnt[key]
		val[key, "throughput", c] = kv["throughput"]
		val[key, "p50_ms", c] = kv["p50_ms"]
		val[key, "p99_ms", c] = kv["p99_ms"]
		errs[key] += kv["errors"]
	}
	END {
		printf "%-6s %-15s %4s %6s  %-26s %-22s %-22s %s\n", "load", "system", "runs", "errors", "throughput ok/s (min-max)", "p50 ms (min-max)", "p99 ms (min-max)", "meshq/peer"
		nl = split(loads, L, " ")
		nt = split("meshq redis nats meshq-follower", T, " ")
		for (li = 1; li <= nl; li++) for (ti = 1; ti <= nt; ti++) {
			key = L[li] SUBSEP T[ti]
			if (!cnt[key] && !failed[key]) continue
			tp = stat(key, "throughput", "tp"); p50 = stat(key, "p50_ms", "ms"); p99 = stat(key, "p99_ms", "ms")
			ratio = "-"
			mk = L[li] SUBSEP "meshq"
			if ((T[ti] == "redis" || T[ti] == "nats") && cnt[mk] && cnt[key] && medians[key, "throughput"] > 0)
				ratio = sprintf("%.2f", medians[mk, "throughput"] / medians[key, "throughput"])
			runs = cnt[key] (failed[key] ? "+" failed[key] "F" : "")
			printf "%-6s %-15s %4s %6d  %-26s %-22s %-22s %s\n", L[li], T[ti], runs, errs[key], tp, p50, p99, ratio
		}
	}' "$runs"
}

echo
echo "meshq vs Redis vs NATS JetStream: $rounds round(s) x ${run_seconds}s per run, ${payload}-byte payloads, medians (min-max)"
table | tee "$out/table.txt"
echo "raw runs: $runs"
