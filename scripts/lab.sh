#!/usr/bin/env bash
# The shoal lab: a fleet of N "machines" on this one machine, for multi-node end-to-end tests,
# benchmarks and the failover demo. Each node is a network namespace on one bridge with its own
# address, its own containerd + dockerd (own roots, socket, bridge subnet and cgroup parent), the
# local test image loaded, and its own `shoal agent` with its own data dir and logs. A node
# without an engine (`up --engines`) has no containerd or dockerd: its agent finds no engine and
# is never given tasks, but votes, replicates and answers the API like any other.
#
#   lab.sh up N [--agents M] [--engines E]
#                               fresh lab of N (1..12) nodes; waits until every agent is healthy
#                               (--agents M: start agents on lab1..labM only, the rest by `start`;
#                               --engines E: only lab1..labE get an engine, the others run their
#                               agent alone, so that 2 cores can hold a fleet of 10 or more)
#   lab.sh down                 removes everything the lab made (also after a crash of this script)
#   lab.sh kill NODE            a dead host: SIGKILL every process of the node, containers included
#   lab.sh start NODE           starts what of the node is not running (engine, agent); waits for health
#   lab.sh restart NODE         kill, then start: engine and agent again on the same data dirs
#   lab.sh partition NODE...    cuts the named nodes off from the others (they still reach each other);
#                               partitions add up until `heal`
#   lab.sh heal                 undoes every partition
#   lab.sh exec NODE CMD...     runs CMD in the node's namespace (SHOAL_ADDR, SHOAL_DATA_DIR and
#                               DOCKER_HOST point at that node)
#   lab.sh status               one line per node: address, namespace, processes, health
#   lab.sh logs NODE [agent|dockerd|containerd]   the last lines of a node's log
#
# NODE is `labK`, `K` or `shoal-labK`. Node K is namespace shoal-labK with address 10.77.0.(10+K)
# on bridge shoal-lab0 (10.77.0.1 on the host side); the host end of its veth is also called
# shoal-labK. Agents listen on port 7420 of their own address.
#
# Environment: SHOAL_LAB_AGENT_ARGS (extra agent arguments for every node, split on whitespace)
# and SHOAL_LAB_AGENT_ARGS_K (for node K only), read whenever an agent starts, where {index},
# {name} and {address} stand for the node's own (`--mdns-interface {address}`);
# SHOAL_LAB_WAIT_SECONDS (every wait's deadline, default 60); SHOAL_TEST_IMAGE; SHOAL_LAB_BIN (the
# shoal every node runs, default bin/shoal: a compiled release binary for its smoke test).
#
# Partitions are iptables rules on the bridge (FORWARD chain, matched by bridge port with
# physdev), not links taken down: a partitioned group of several nodes still talks among itself,
# multicast included, and the host (10.77.0.1) still reaches every node, so a test can watch a
# partitioned node from outside. Nothing here routes traffic out of the lab: namespaces have no
# default route, only the lab subnet and a multicast route on their own link.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
# SHOAL_LAB_BIN runs another build of shoal on every node, e.g. a compiled release binary.
readonly shoal_bin="${SHOAL_LAB_BIN:-$repo_root/bin/shoal}"
readonly run_root=/run/shoal-lab
readonly data_root=/var/lib/shoal-lab
readonly lock_file=/run/lock/shoal-lab.lock
readonly bridge=shoal-lab0
readonly bridge_address=10.77.0.1
readonly chain=SHOAL-LAB
readonly rule_comment=shoal-lab
readonly cgroup_parent=shoal-lab
readonly agent_port=7420
readonly nodes_max=12
readonly image="${SHOAL_TEST_IMAGE:-shoal-test/busybox:1}"
readonly wait_seconds="${SHOAL_LAB_WAIT_SECONDS:-60}"

say() { echo "lab: $*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

# --- naming -------------------------------------------------------------------------------------

ns_of() { echo "shoal-lab$1"; }
name_of() { echo "lab$1"; }
address_of() { echo "10.77.0.$((10 + $1))"; }
veth_of() { echo "shoal-lab$1"; }
run_dir_of() { echo "$run_root/lab$1"; }
data_dir_of() { echo "$data_root/lab$1"; }
docker_sock_of() { echo "$run_root/lab$1/docker.sock"; }

# Accepts lab3, 3 or shoal-lab3 and prints 3.
node_index() {
  local k="${1#shoal-}"
  k="${k#lab}"
  [[ "$k" =~ ^([1-9]|1[0-2])$ ]] || die "unknown node '$1' (expected lab1..lab$nodes_max)"
  [[ -e "/var/run/netns/$(ns_of "$k")" ]] || die "node lab$k is not in the lab (run 'lab.sh up N' first)"
  echo "$k"
}

# Indices of the nodes whose namespace exists, ascending.
lab_nodes() {
  local k
  for k in $(seq 1 "$nodes_max"); do
    [[ -e "/var/run/netns/$(ns_of "$k")" ]] && echo "$k"
  done
  return 0
}

# --- preconditions ------------------------------------------------------------------------------

require_root() {
  [[ $EUID -eq 0 ]] || die "the lab needs root (namespaces, a bridge, iptables, dockerd); running as uid $EUID"
}

require_tools() {
  local tool
  for tool in ip nsenter iptables dockerd containerd docker curl flock setsid timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing (install docker.io, iproute2, iptables, curl, util-linux)"
  done
}

# Serializes the commands that change the lab. Children must not inherit descriptor 9.
take_lock() {
  mkdir -p "$(dirname "$lock_file")"
  exec 9>"$lock_file"
  flock -w "$wait_seconds" 9 || die "another lab.sh holds $lock_file for more than ${wait_seconds}s"
}

# --- processes ----------------------------------------------------------------------------------

alive() {
  local pid="$1" state
  [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]]
}

pid_from() {
  [[ -r "$1" ]] && tr -dc '0-9' <"$1"
  return 0
}

# Every descendant of the given pids (containers sit below their containerd-shim).
descendants() {
  (($# > 0)) || return 0
  ps -e -o pid=,ppid= | awk -v roots=" $* " '
    { parent[$1] = $2; pids[n++] = $1 }
    END {
      split(roots, r, " "); for (i in r) keep[r[i]] = 1
      changed = 1
      while (changed) {
        changed = 0
        for (i = 0; i < n; i++) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
      }
      for (p in keep) print p
    }'
}

# Every process that belongs to node K (or to any lab node when K is empty): processes in its
# namespace, processes in its containers' cgroups, processes whose command line names its dirs
# (a containerd-shim outlives a crashed script and a deleted namespace), and their descendants.
node_pids() {
  # With K, names end at the label (lab1 must not match lab10's dirs and cgroups).
  local k="${1:-}" label="lab${1:-}" roots=() pid ns dir path_end="${1:+([^0-9]|$)}"
  local cgroups=(-path "*/$cgroup_parent/$label*")
  [[ -n "$k" ]] && cgroups=(\( -path "*/$cgroup_parent/$label" -o -path "*/$cgroup_parent/$label/*" \))
  for ns in /var/run/netns/shoal-lab${k:-*}; do
    [[ -e "$ns" ]] || continue
    while read -r pid; do roots+=("$pid"); done < <(ip netns pids "$(basename "$ns")" 2>/dev/null)
  done
  while read -r dir; do
    while read -r pid; do roots+=("$pid"); done <"$dir/cgroup.procs"
  done < <(find /sys/fs/cgroup -mindepth 1 -maxdepth 4 "${cgroups[@]}" -type d 2>/dev/null)
  while read -r pid; do roots+=("$pid"); done < <(
    grep -lsaE "(/run|/var/lib)/shoal-lab/${label}${path_end}" /proc/[0-9]*/cmdline 2>/dev/null |
      cut -d/ -f3
  )
  ((${#roots[@]} > 0)) || return 0
  descendants "${roots[@]}" | grep -vxE "$$|$BASHPID|$PPID" | sort -un
}

# SIGKILLs every process of node K (every lab process when K is empty) until none is left.
kill_node_processes() {
  local k="${1:-}" deadline=$((SECONDS + wait_seconds)) pids
  while :; do
    mapfile -t pids < <(node_pids "$k" | while read -r p; do alive "$p" && echo "$p"; done)
    ((${#pids[@]} == 0)) && return 0
    ((SECONDS < deadline)) ||
      die "processes of ${k:+lab}${k:-the lab} still alive after ${wait_seconds}s: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.2
  done
}

# A containerd-shim listens on /run/containerd/s/sha256(<containerd socket>/<namespace>/<id>),
# shared by every containerd; a SIGKILLed shim leaves its socket behind, so remove the node's.
remove_shim_sockets() {
  local k="$1" dir id hash
  for dir in "$(data_dir_of "$k")"/docker/containers/*/; do
    [[ -d "$dir" ]] || continue
    id="$(basename "$dir")"
    hash="$(printf '%s' "$(run_dir_of "$k")/containerd.sock/moby/$id" | sha256sum | cut -d' ' -f1)"
    rm -f "/run/containerd/s/$hash"
  done
}

# Unmounts everything mounted below the given directories (overlays, shm, netns files), deepest
# first: dockerd runs in the host's mount namespace, so its mounts outlive it.
unmount_below() {
  local prefix mounts=() target
  for prefix in "$@"; do
    while read -r target; do mounts+=("$target"); done < <(
      awk -v p="$prefix/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo
    )
  done
  ((${#mounts[@]} > 0)) || return 0
  while read -r target; do
    target="${target//\\040/ }"
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
  done < <(printf '%s\n' "${mounts[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
  local left
  for prefix in "$@"; do
    left="$(awk -v p="$prefix/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | head -3)"
    [[ -z "$left" ]] || die "mounts remain after unmounting: $left"
  done
}

# Waits (at most wait_seconds) until a command succeeds; the caller names what did not happen.
wait_until() {
  local deadline=$((SECONDS + wait_seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# Starts a daemon detached (own session, stdio to its log, no lock descriptor) and records its pid.
spawn() {
  local pidfile="$1" log="$2"
  shift 2
  # A pid file left by a process that died must not pass for the new one's.
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$ and $0 belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null 9>&- &
  local waited=0
  until [[ -s "$pidfile" ]] || ((waited > 50)); do
    sleep 0.05
    waited=$((waited + 1))
  done
}

# --- network ------------------------------------------------------------------------------------

bridge_up() {
  ip link add "$bridge" type bridge
  # Snooping could hold back multicast groups nobody queried for; the lab wants plain flooding.
  ip link set "$bridge" type bridge mcast_snooping 0
  ip addr add "$bridge_address/24" dev "$bridge"
  ip link set "$bridge" up
}

# Docker sets FORWARD's policy to DROP, and with bridge-nf-call-iptables bridged frames pass
# FORWARD: one jump, marked with a comment, into a chain of our own that ends in ACCEPT.
firewall_up() {
  iptables -N "$chain"
  iptables -A "$chain" -j ACCEPT
  iptables -I FORWARD 1 -i "$bridge" -o "$bridge" -m comment --comment "$rule_comment" -j "$chain"
}

firewall_down() {
  local rule
  while read -r rule; do
    # shellcheck disable=SC2086 # the rule is a list of iptables words
    eval "iptables -D ${rule#-A }" 2>/dev/null || true
  done < <(iptables -S FORWARD 2>/dev/null | grep -F -- "--comment $rule_comment" || true)
  if iptables -S "$chain" >/dev/null 2>&1; then
    iptables -F "$chain"
    iptables -X "$chain"
  fi
}

node_network_up() {
  local k="$1" ns veth address
  ns="$(ns_of "$k")"
  veth="$(veth_of "$k")"
  address="$(address_of "$k")"
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$bridge" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
  # No default route (nothing leaves the lab), but multicast needs a route to be sent at all.
  ip -n "$ns" route add 224.0.0.0/4 dev eth0
}

# --- engines and agents -------------------------------------------------------------------------

containerd_config() {
  local k="$1"
  cat <<EOF
version = 2
root = "$(data_dir_of "$k")/containerd"
state = "$(run_dir_of "$k")/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$(run_dir_of "$k")/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
EOF
}

# containerd is started by us, not by dockerd: dockerd would share a system containerd whenever
# /run/containerd/containerd.sock exists, and every node needs its own.
engine_start() {
  local k="$1" ns run data
  ns="/var/run/netns/$(ns_of "$k")"
  run="$(run_dir_of "$k")"
  data="$(data_dir_of "$k")"
  mkdir -p "$run" "$data/docker" "$data/containerd"
  rm -f "$run/containerd.sock" "$run/containerd.sock.ttrpc" "$run/docker.sock"
  containerd_config "$k" >"$run/containerd.toml"
  echo '{}' >"$run/daemon.json"
  spawn "$run/containerd.pid" "$run/containerd.log" \
    nsenter "--net=$ns" -- containerd --config "$run/containerd.toml"
  wait_until test -S "$run/containerd.sock" ||
    die "containerd of lab$k did not create $run/containerd.sock within ${wait_seconds}s (see $run/containerd.log)"
  spawn "$run/dockerd.pid.spawn" "$run/dockerd.log" \
    nsenter "--net=$ns" -- dockerd \
    --config-file "$run/daemon.json" \
    --containerd "$run/containerd.sock" \
    --data-root "$data/docker" \
    --exec-root "$run/docker" \
    --pidfile "$run/dockerd.pid" \
    -H "unix://$(docker_sock_of "$k")" \
    --bip "172.30.$k.1/24" \
    --iptables=false \
    --cgroup-parent "/$cgroup_parent/lab$k" \
    --log-level warn
}

engine_answers() { timeout 5 docker -H "unix://$(docker_sock_of "$1")" version; }

engine_wait() {
  local k="$1"
  wait_until engine_answers "$k" ||
    die "dockerd of lab$k did not answer on $(docker_sock_of "$k") within ${wait_seconds}s (see $(run_dir_of "$k")/dockerd.log)"
}

# The host engine's copy of the test image, saved once per `up` and loaded into every node.
host_image_save() {
  if ! timeout 10 docker image inspect "$image" >/dev/null 2>&1; then
    timeout 10 docker info >/dev/null 2>&1 || bash "$repo_root/scripts/ensure-docker.sh"
    bash "$repo_root/scripts/test-image.sh"
  fi
  timeout 60 docker save -o "$run_root/image.tar" "$image" ||
    die "docker save $image from the host engine failed"
}

image_load() {
  local k="$1"
  timeout 60 docker -H "unix://$(docker_sock_of "$k")" load -q -i "$run_root/image.tar" >/dev/null ||
    die "loading $image into lab$k's engine failed"
}

pull_args=()
detect_pull_flag() {
  # --pull never keeps every lab engine away from registries, once the agent knows the flag.
  if timeout 30 "$shoal_bin" agent --help 2>/dev/null | grep -q -- '--pull'; then
    pull_args=(--pull never)
  fi
  echo "${pull_args[*]}" >"$run_root/pull-args"
}

# The node's extra agent arguments: SHOAL_LAB_AGENT_ARGS for every node, then
# SHOAL_LAB_AGENT_ARGS_K for node K; {index}, {name} and {address} become the node's own.
agent_extra_args() {
  local k="$1" per_node="SHOAL_LAB_AGENT_ARGS_$1" text
  text="${SHOAL_LAB_AGENT_ARGS:-} ${!per_node:-}"
  text="${text//\{index\}/$k}"
  text="${text//\{name\}/$(name_of "$k")}"
  text="${text//\{address\}/$(address_of "$k")}"
  echo "$text"
}

agent_start() {
  local k="$1" run data extra=()
  run="$(run_dir_of "$k")"
  data="$(data_dir_of "$k")"
  read -ra extra <<<"$(agent_extra_args "$k")"
  read -ra pull_args <<<"$(cat "$run_root/pull-args" 2>/dev/null)"
  mkdir -p "$data/shoal"
  spawn "$run/agent.pid" "$run/agent.log" \
    nsenter "--net=/var/run/netns/$(ns_of "$k")" -- env -u DOCKER_HOST -u SHOAL_ADDR \
    "$shoal_bin" agent \
    --data-dir "$data/shoal" \
    --bind "$(address_of "$k")" \
    --port "$agent_port" \
    --name "$(name_of "$k")" \
    --docker-host "unix://$(docker_sock_of "$k")" \
    "${pull_args[@]}" "${extra[@]}"
}

# SHOAL_LAB_SCHEME=http only for agents started with --bench-plain-http (npm run bench).
health_url() { echo "${SHOAL_LAB_SCHEME:-https}://$(address_of "$1"):$agent_port/v1/health"; }

# Health is public, and a joiner serves no certificate of its cluster yet: only the status counts.
healthy() { curl -sfk --max-time 2 -o /dev/null "$(health_url "$1")"; }

agent_wait() {
  local k="$1" run
  run="$(run_dir_of "$k")"
  local deadline=$((SECONDS + wait_seconds))
  until healthy "$k"; do
    if ! alive "$(pid_from "$run/agent.pid")"; then
      tail -n 20 "$run/agent.log" >&2 || true
      die "the agent of lab$k exited before answering health (log: $run/agent.log, last lines above)"
    fi
    ((SECONDS < deadline)) ||
      die "the agent of lab$k did not answer $(health_url "$k") with 200 within ${wait_seconds}s (see $run/agent.log)"
    sleep 0.2
  done
}

# Runs one function for every given node in parallel and fails if any failed.
for_nodes() {
  local fn="$1" k pids=() failed=0 pid
  shift
  for k in "$@"; do
    "$fn" "$k" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || die "$fn failed for at least one node (see above)"
}

# A node without an engine carries a mark in its run dir, kept across kill and start.
has_engine() { [[ ! -e "$(run_dir_of "$1")/no-engine" ]]; }

node_boot() {
  local k="$1"
  has_engine "$k" || return 0
  engine_start "$k"
  engine_wait "$k"
}

node_image_load() {
  has_engine "$1" || return 0
  image_load "$1"
}

# --- commands -----------------------------------------------------------------------------------

cmd_down() {
  local k started=$SECONDS
  kill_node_processes ""
  for k in $(seq 1 "$nodes_max"); do remove_shim_sockets "$k"; done
  unmount_below "$run_root" "$data_root"
  for k in $(lab_nodes); do ip netns del "$(ns_of "$k")" 2>/dev/null || true; done
  for k in $(seq 1 "$nodes_max"); do
    ip link del "$(veth_of "$k")" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  firewall_down
  # Empty cgroups of the nodes' containers, deepest first.
  find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$cgroup_parent" 2>/dev/null |
    while read -r dir; do find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  rm -rf "$run_root" "$data_root"
  say "down in $((SECONDS - started))s"
}

cmd_up() {
  local count="${1:-}" started=$SECONDS k nodes=() with_agents=()
  local usage_line="usage: lab.sh up N [--agents M] [--engines E] (N from 1 to $nodes_max)"
  [[ "$count" =~ ^([1-9]|1[0-2])$ ]] || die "$usage_line"
  shift
  local agents="$count" engines="$count"
  while (($# > 0)); do
    case "$1" in
    --agents) agents="${2:-}" ;;
    --engines) engines="${2:-}" ;;
    *) die "$usage_line" ;;
    esac
    if ! [[ "${2:-}" =~ ^[0-9]+$ ]] || (($2 > count)); then
      die "$1 takes 0 to $count, not '${2:-}'"
    fi
    shift 2
  done
  [[ -x "$shoal_bin" ]] || die "$shoal_bin is missing"
  if [[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" != 1 ]]; then
    say "note: net.bridge.bridge-nf-call-iptables is not 1: bridged traffic skips iptables, so 'partition' cannot work"
  fi
  cmd_down
  mkdir -p "$run_root" "$data_root"
  host_image_save
  detect_pull_flag
  bridge_up
  firewall_up
  mapfile -t nodes < <(seq 1 "$count")
  for k in "${nodes[@]}"; do
    node_network_up "$k"
    mkdir -p "$(run_dir_of "$k")"
    ((k <= engines)) || touch "$(run_dir_of "$k")/no-engine"
  done
  for_nodes node_boot "${nodes[@]}"
  for_nodes node_image_load "${nodes[@]}"
  rm -f "$run_root/image.tar"
  mapfile -t with_agents < <(seq 1 "$agents")
  for k in "${with_agents[@]}"; do agent_start "$k"; done
  ((agents == 0)) || for_nodes agent_wait "${with_agents[@]}"
  say "up: $count node(s), $engines engine(s), $agents agent(s) healthy in $((SECONDS - started))s"
}

cmd_kill() {
  local k
  k="$(node_index "${1:-}")"
  # Mounts stay, as after a power cut; start and restart clear them.
  kill_node_processes "$k"
  remove_shim_sockets "$k"
  rm -f "$(run_dir_of "$k")"/{agent,containerd,dockerd}.pid "$(run_dir_of "$k")/dockerd.pid.spawn"
  say "killed lab$k"
}

# What is left of a dead node: its processes, shim sockets, pid files and the mounts that its
# engine made (dockerd mounts again what it needs when it starts).
node_reset() {
  local k="$1" run
  run="$(run_dir_of "$k")"
  kill_node_processes "$k"
  remove_shim_sockets "$k"
  rm -f "$run"/{agent,containerd,dockerd}.pid "$run/dockerd.pid.spawn"
  unmount_below "$run" "$(data_dir_of "$k")"
}

# Starts what of the node is not running (engine, agent) without touching what runs.
node_start() {
  local k="$1"
  if has_engine "$k" && ! engine_answers "$k" >/dev/null 2>&1; then
    node_reset "$k"
    node_boot "$k"
  fi
  alive "$(pid_from "$(run_dir_of "$k")/agent.pid")" || agent_start "$k"
  agent_wait "$k"
}

cmd_start() {
  local k
  k="$(node_index "${1:-}")"
  node_start "$k"
  say "started lab$k"
}

cmd_restart() {
  local k
  k="$(node_index "${1:-}")"
  node_reset "$k"
  node_start "$k"
  say "restarted lab$k"
}

cmd_partition() {
  (($# > 0)) || die "usage: lab.sh partition NODE [NODE...]"
  [[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" == 1 ]] ||
    die "net.bridge.bridge-nf-call-iptables is not 1, so iptables never sees bridged traffic; run: sysctl -w net.bridge.bridge-nf-call-iptables=1"
  local inside=() k other a b
  for k in "$@"; do inside+=("$(node_index "$k")"); done
  for other in $(lab_nodes); do
    [[ " ${inside[*]} " == *" $other "* ]] && continue
    for k in "${inside[@]}"; do
      for pair in "$k $other" "$other $k"; do
        read -r a b <<<"$pair"
        iptables -C "$chain" -m physdev --physdev-in "$(veth_of "$a")" --physdev-out "$(veth_of "$b")" -j DROP 2>/dev/null ||
          iptables -I "$chain" 1 -m physdev --physdev-in "$(veth_of "$a")" --physdev-out "$(veth_of "$b")" -j DROP
      done
    done
  done
  say "partitioned ${inside[*]/#/lab} from the other nodes"
}

cmd_heal() {
  iptables -S "$chain" >/dev/null 2>&1 || die "the lab's iptables chain $chain is missing (is the lab up?)"
  iptables -F "$chain"
  iptables -A "$chain" -j ACCEPT
  say "healed"
}

cmd_exec() {
  local k
  k="$(node_index "${1:-}")"
  shift
  (($# > 0)) || die "usage: lab.sh exec NODE CMD..."
  exec env SHOAL_ADDR="$(address_of "$k"):$agent_port" \
    SHOAL_DATA_DIR="$(data_dir_of "$k")/shoal" \
    DOCKER_HOST="unix://$(docker_sock_of "$k")" \
    nsenter "--net=/var/run/netns/$(ns_of "$k")" -- "$@"
}

process_cell() {
  local pid
  pid="$(pid_from "$1")"
  if alive "$pid"; then echo "$pid"; else echo "${pid:-none}(dead)"; fi
}

cmd_status() {
  local k run health containerd dockerd
  printf '%-6s %-11s %-12s %-16s %-16s %-16s %s\n' node address namespace containerd dockerd agent health
  for k in $(lab_nodes); do
    run="$(run_dir_of "$k")"
    if healthy "$k"; then health=ok; else health=down; fi
    containerd="-" dockerd="-"
    if has_engine "$k"; then
      containerd="$(process_cell "$run/containerd.pid")" dockerd="$(process_cell "$run/dockerd.pid")"
    fi
    printf '%-6s %-11s %-12s %-16s %-16s %-16s %s\n' "$(name_of "$k")" "$(address_of "$k")" \
      "$(ns_of "$k")" "$containerd" "$dockerd" "$(process_cell "$run/agent.pid")" "$health"
  done
  if iptables -S "$chain" 2>/dev/null | grep -q DROP; then
    echo "partitions: $(iptables -S "$chain" 2>/dev/null | grep -c DROP) drop rule(s) on $bridge"
  fi
}

cmd_logs() {
  local k which="${2:-agent}"
  k="$(node_index "${1:-}")"
  [[ "$which" =~ ^(agent|dockerd|containerd)$ ]] || die "usage: lab.sh logs NODE [agent|dockerd|containerd]"
  tail -n "${SHOAL_LAB_LOG_LINES:-50}" "$(run_dir_of "$k")/$which.log"
}

usage() {
  sed -n '/^#   lab.sh/,/^#$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local command="${1:-}"
  (($# > 0)) && shift
  case "$command" in
  up | down | kill | start | restart | partition | heal)
    require_root
    require_tools
    take_lock
    "cmd_$command" "$@"
    ;;
  exec | status | logs)
    require_root
    "cmd_$command" "$@"
    ;;
  *) usage ;;
  esac
}

main "$@"
