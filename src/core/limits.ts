// Every bound and default of shoal, in one place. Units and qualifiers come last in names.
// Relations between limits are asserted when this module loads.
import { assert } from "./assert.ts";

export const limits = {
  // API
  apiPortDefault: 7420,
  requestBodyBytesMax: 1024 * 1024,
  listResultsMax: 1000,
  sseHeartbeatMs: 15_000,
  /**
   * A request's headers must arrive within this of the handshake or of the last answer on its
   * connection (the TLS listener's deadline; Node's own default is 60 s).
   */
  httpHeadersTimeoutMs: 10_000,
  /** A request's body must arrive within this of its headers (Node's default is 300 s). */
  httpRequestTimeoutMs: 30_000,
  /** A peer's idle keep-alive socket is dropped after this, before the other end's header deadline. */
  peerIdleSocketMs: 5000,
  sseClientsMax: 64,
  eventsPageMax: 1000,
  shutdownGraceMs: 3000,

  // Ingress (every node's ports to a service's tasks)
  /** Upstreams one new ingress connection tries before it is refused. */
  ingressAttemptsMax: 3,
  /** An ingress connect to an upstream gives up after this, and tries the next. */
  ingressConnectTimeoutMs: 250,
  /** An upstream whose connect failed is tried only after the others for this long. */
  ingressFailedUpstreamMs: 5000,
  /**
   * A request sent that has no answer after this makes the proxy check, by a fresh connect,
   * whether the upstream's host still answers at all (a kept-alive socket to a dead host would
   * otherwise wait for TCP's own timeout, minutes).
   */
  ingressAnswerProbeMs: 500,
  /** Ingress ports one node reports on (every service's together). */
  ingressListenersPerNodeMax: 1024,
  /** The table is read again this often whatever was applied (a snapshot applies nothing). */
  ingressResyncMs: 2000,
  /** The table is read from the replica at most this often during a burst of writes. */
  ingressRefreshMs: 20,
  /** Open connections per ingress port on one node. */
  ingressConnectionsMax: 4096,
  /** Open connections of one client address per ingress port: no one client fills the port. */
  ingressConnectionsPerClientMax: 512,
  /** A probe that found an upstream answering stands this long for the slow requests after it. */
  ingressProbeFreshMs: 1000,
  /** A closing ingress port (the service's ingress gone, the node stopping) cuts what is open after this. */
  ingressCloseGraceMs: 5000,
  /** A port another program holds is tried again this often. */
  ingressListenRetryMs: 5000,
  /** An idle kept-alive HTTP client connection is closed after this (longer than clients'). */
  ingressHttpIdleMs: 60 * 60_000,
  /** TCP keep-alive probes on spliced connections start after this much silence. */
  ingressKeepAliveProbeMs: 60_000,
  ingressUpstreamFreeSocketsMax: 32,
  /** An idle kept-alive socket to an upstream closes after this (below Node's 5 s default). */
  ingressUpstreamIdleMs: 4000,

  // Specs
  serviceNameLengthMax: 63,
  containersPerTaskMax: 10,
  replicasMax: 1000,
  portsPerContainerMax: 64,
  envPerContainerMax: 256,
  envValueBytesMax: 32 * 1024,
  mountsPerContainerMax: 32,
  /** `--allow-host-path` directories of one node (and the paths it denies). */
  hostPathsPerNodeMax: 32,
  commandArgsMax: 256,
  labelsPerNodeMax: 64,
  labelLengthMax: 128,
  imageNameLengthMax: 255,
  cpuPerContainerMax: 1024,
  memoryMbPerContainerMax: 1024 * 1024,
  memoryMbPerContainerMin: 6,
  ingressPerServiceMax: 16,
  ingressHostsMax: 32,
  /** A Host name an ingress routes by (DNS's bound on a name). */
  ingressHostLengthMax: 253,
  /** A task about to stop keeps its open ingress connections at most this long. */
  drainMsMax: 3_600_000,
  healthcheckIntervalMsMin: 1000,
  healthcheckIntervalMsMax: 3_600_000,
  healthcheckRetriesMax: 100,

  // Trust
  /** Certificates start this long before they are made: a Pi without a clock may lag behind. */
  certBackdateMs: 60 * 60 * 1000,
  caLifetimeMs: 10 * 365 * 24 * 60 * 60 * 1000,
  /** A node's certificate lives this long (Swarm's default is 90 days, k3s's a year). */
  nodeCertLifetimeMs: 30 * 24 * 60 * 60 * 1000,
  /** A TLS handshake not done by then is ended (Node's default is 120 s). */
  tlsHandshakeTimeoutMs: 5000,
  /** Open connections from one client address; beyond, new ones are closed unread. */
  connectionsPerClientMax: 128,
  /** Bytes of one PEM certificate, key or request. */
  pemBytesMax: 16 * 1024,
  /** Bytes of a join request (a certificate request and the node's facts) and of its answer. */
  joinRequestBytesMax: 64 * 1024,
  joinAnswerBytesMax: 1024 * 1024,
  /** Members listed in a join answer. */
  joinMembersMax: 1024,
  /** A kept certificate with less than this left is not used: the node asks to be admitted again. */
  nodeCertExpiringMs: 60_000,
  /** A node asks for a new certificate once less than this is left of its current one. */
  nodeCertRenewBeforeMs: 10 * 24 * 60 * 60 * 1000,
  /** How often a node looks at what is left of its certificate. */
  nodeCertRenewCheckMs: 60 * 60 * 1000,

  // Peers
  /** A signed peer request older or newer than this (by the sender's clock) is refused. */
  peerRequestWindowMs: 30_000,
  /** Nonces remembered to refuse replays within the window. */
  peerNoncesMax: 100_000,
  /** Raft messages queued for one peer; beyond, messages are dropped (Raft resends). */
  peerQueueMessagesMax: 4096,
  /** Requests to one peer in flight at once, pipelined on keep-alive connections. */
  peerRequestsInFlightMax: 4,
  /** Bytes of one batch of peer messages (a snapshot still travels alone, whatever its size). */
  peerBatchBytesMax: 4 * 1024 * 1024,
  /** Bytes of one peer request body (a batch of appends, or one snapshot chunk). */
  peerBodyBytesMax: 8 * 1024 * 1024,
  /** Bytes of one whole snapshot, sent in chunks; a larger state cannot be replicated. */
  snapshotBytesMax: 1024 * 1024 * 1024,
  peerRequestTimeoutMs: 10_000,
  /** A member's address is read from the store again after this long (it changes on restart). */
  peerAddressCacheMs: 1000,
  peerAddressCacheMax: 1024,
  /** Keep-alive sockets to one peer: pipelined appends plus forwarded writes and reads. */
  peerSocketsMax: 16,
  /** Frames held for a peer stream while it opens; beyond, messages are dropped. */
  peerStreamWaitingMax: 256,
  /** Bytes a peer stream may hold unsent (a slow or stuck peer); beyond, messages are dropped. */
  peerStreamBufferBytesMax: 16 * 1024 * 1024,
  /** Frames unanswered this long mean a dead path (as long as a peer request may take). */
  peerStreamSilenceMs: 10_000,
  peerStreamConnectTimeoutMs: 1000,
  /** After a failed stream, the next attempt to the same peer waits this long. */
  peerStreamRetryMs: 100,
  /** A peer without streams (an older shoal) is sent requests for this long before asking again. */
  peerStreamFallbackMs: 60_000,
  /** An accepted stream with no frame for this long is closed (heartbeats are far more often). */
  peerStreamIdleMs: 30_000,
  /** Peer streams one node accepts at once (one per peer: a peer's new stream ends its old). */
  peerStreamsMax: 64,
  /** mDNS browsers query once; shoal asks again this often, since peers come and go. */
  discoveryRequeryMs: 2000,
  /** A peer not heard of over mDNS for this long is no longer a candidate. */
  discoveryPeerTtlMs: 15_000,
  /** Peers an mDNS browser keeps (anyone on the LAN can announce): the oldest go first. */
  discoveryPeersMax: 256,
  /** A node with no token listens this long for an existing cluster before creating one. */
  discoveryBootstrapWaitMs: 1500,

  // Membership
  /** A joining node asks its candidates again this often until one admits it. */
  joinRetryMs: 1000,
  /** `--join` addresses one agent takes. */
  joinAddressesMax: 16,
  /** A node still looking for its cluster says so once every this many rounds. */
  joinLogEveryRounds: 10,
  /** The largest `--snapshot-entries`: a longer log costs memory and replay time at start. */
  snapshotEntriesMax: 1_000_000,
  /** Writes applied within this many milliseconds share one scheduler evaluation. */
  schedulerCoalesceMs: 5,
  /**
   * After an evaluation that took E ms, the next one triggered by a write waits at least this
   * many times E: evaluations read the whole fleet, and under a stream of writes they would
   * otherwise take the leader's turn from the writes themselves (at most 1/(1+4) of it here).
   */
  schedulerBusyFactor: 4,
  /** The longest a write waits for its evaluation, however long evaluations take. */
  schedulerCoalesceMaxMs: 200,
  /** How long a starting node waits for its registration to commit before serving anyway. */
  registerWaitMs: 5000,
  /** The voter keeper (leader) and the registration (every node) run this often. */
  memberDutyIntervalMs: 500,
  /** A voter silent this long is replaced by a healthy learner (DESIGN: voterReplaceAfterMs). */
  voterReplaceAfterMs: 30_000,
  /** A member whose log is within this many entries of the leader's may become a voter. */
  caughtUpEntriesMax: 100,
  /** A member silent this long no longer counts as reachable for membership decisions. */
  memberSilentAfterMs: 2000,
  /** How long SIGTERM on the leader waits for another voter to take over. */
  transferWaitMs: 3000,
  /** A member asked for its status in `GET /v1/cluster` has this long to answer. */
  memberStatusTimeoutMs: 500,

  // Store
  /** Larger than any request body, so every accepted request fits in one command. */
  commandBytesMax: 2 * 1024 * 1024,
  /** Reasons and messages carried in commands. */
  commandTextBytesMax: 4096,
  eventsRetainMax: 10_000,
  /** Forwarded writes remembered by request id, so a resent one is not applied twice. */
  requestsRetainMax: 10_000,
  /** Bytes of one remembered result. */
  requestResultBytesMax: 16 * 1024,
  /** Proposals, reads and peer messages that may wait while raft.db is being flushed. */
  logWaitingMax: 10_000,
  /** Task definitions each node keeps in memory (they never change once registered). */
  taskDefinitionsCachedMax: 1024,
  /** Old events and finished tasks are pruned once every this many log entries. */
  pruneEveryEntries: 64,
  terminalTasksRetainMax: 500,
  taskDefinitionRevisionsRetainMax: 100,
  dbBusyTimeoutMs: 5000,
  /**
   * Free bytes on the data dir's file system below which a leader refuses proposals with
   * E_NO_SPACE, as etcd raises its NOSPACE alarm: the room left lets the log finish what it has
   * taken already and record the condition itself. It is one WAL checkpoint (SQLite moves up to
   * 1000 pages of 4 KiB from a -wal file into its database at once, measured here as a 2.6 MB
   * jump): below it a refusal is clean, and a checkpoint still rarely meets ENOSPC. A fresh data
   * dir takes about 320 KB, so one on a 12 MB disk takes writes until some 7 MB are used.
   */
  diskReserveBytes: 4 * 1024 * 1024,
  /**
   * Free space is read again (statfs) at most this often, and after each batch the node wrote:
   * at most one syscall per batch, shared by its proposals, never one per request.
   */
  diskSpaceCheckMs: 200,
  /** A batch that a full disk refused is written, flushed or applied again after this long. */
  diskFullRetryMs: 1000,

  // Scheduler
  /** A task that ran at least this long before failing resets its service's failure streak. */
  taskStableMs: 10_000,
  restartBackoffMsMin: 1000,
  restartBackoffMsMax: 60_000,
  schedulerSweepMs: 1000,
  placementsPerPlanMax: 1000,
  /** Placement constraints per service, and the length of one (`zone != garage`). */
  constraintsPerServiceMax: 16,
  constraintLengthMax: 256,
  /** Parsed constraints the scheduler keeps, by text, instead of parsing them each evaluation. */
  constraintsCachedMax: 1024,
  /** Values of one `in (...)` constraint. */
  constraintValuesMax: 32,
  /** Deployments kept per service; older finished ones are pruned. */
  deploymentsRetainPerService: 10,
  /** The circuit breaker trips after this share of the desired count failing, clamped. */
  deploymentFailureShare: 0.5,
  deploymentFailuresMin: 3,
  deploymentFailuresMax: 200,
  /** The longest `stopAfterDisconnectMs` a service may set (a day). */
  stopAfterDisconnectMsMax: 86_400_000,

  // Agent
  agentHeartbeatMs: 1000,
  nodeDownAfterMs: 3000,
  /** An agent whose heartbeats go unanswered this long is cut off: it runs on by itself. */
  cutOffAfterMs: 2000,
  /** Restarts of a crashed container while cut off back off from the first to the longest. */
  offlineRestartMsMin: 1000,
  offlineRestartMsMax: 30_000,
  /** Nodes whose last heartbeat usage the leader keeps in memory. */
  heartbeatUsagesKeptMax: 4096,
  /** How often the leader judges which nodes are down. */
  livenessCheckMs: 250,
  reconcileMs: 2000,
  dockerRetryMsMin: 500,
  dockerRetryMsMax: 15_000,
  dockerRequestTimeoutMs: 30_000,
  containerStopTimeoutSeconds: 10,
  /** The first reconnect of the engine's event stream waits this long, doubling up to the max. */
  dockerEventsReconnectMsMin: 100,
  dockerEventsReconnectMsMax: 5000,
  /** Recent event keys kept to drop the events a reconnect replays. */
  dockerEventDedupeKeysMax: 1024,
  /** A longer line is not an event: the stream is broken, so it reconnects. */
  dockerEventLineBytesMax: 1024 * 1024,
  /** Exit codes remembered from `die` events, for containers removed before they were inspected. */
  exitCodesRememberedMax: 1024,
  reportBatchMax: 256,
  /**
   * Decide-and-act rounds for one task in one pass. A round that asks for another either created
   * containers or inspected the ones that exited since; one more follows a failed start, one a
   * refused report, one the first inspections.
   */
  taskDecisionRoundsMax: 32,
  /** A pull that has not brought its image by then is failed (a registry that stalls). */
  imagePullMsMax: 10 * 60_000,
  /** Pulls the agent runs at once; a task whose image waits for a slot stays starting. */
  imagePullsInFlightMax: 2,
  /**
   * How long a failed pull is remembered: a task of that image meanwhile fails at once instead of
   * pulling again. A pull that succeeded yet left no image counts as failed.
   */
  imagePullFailureMemoryMs: 30_000,
  /** Images whose pull outcome is remembered; the oldest is forgotten first. */
  imagePullOutcomesRememberedMax: 256,

  // Raft (used by later layers; kept here so every bound lives in one file)
  raftHeartbeatMs: 100,
  /** How often the host drives the Raft core's clock. */
  raftTickMs: 10,
  /** A proposal not committed within this time is answered E_NO_QUORUM (its fate unknown). */
  proposeTimeoutMs: 5000,
  /** A write on a follower waits this long for a leader during an election (Consul: 7 s). */
  leaderHoldMs: 3000,
  /** A forwarded write's wait for the leader: its own commit wait and a margin, not a hung 10 s. */
  forwardTimeoutMs: 6000,
  electionTimeoutMsMin: 500,
  electionTimeoutMsMax: 1000,
  clockDriftMax: 0.05,
} as const;

export type Limits = typeof limits;

assert(limits.nodeCertRenewBeforeMs < limits.nodeCertLifetimeMs);
assert(limits.peerIdleSocketMs < limits.httpHeadersTimeoutMs);
assert(limits.restartBackoffMsMin <= limits.restartBackoffMsMax);
assert(limits.dockerRetryMsMin <= limits.dockerRetryMsMax);
assert(limits.dockerEventsReconnectMsMin <= limits.dockerEventsReconnectMsMax);
assert(limits.agentHeartbeatMs < limits.nodeDownAfterMs);
assert(limits.imagePullsInFlightMax >= 1);
assert(limits.taskDecisionRoundsMax > 2 * limits.containersPerTaskMax + 3);
// The pass a failed pull triggers must still find the failure remembered.
assert(limits.reconcileMs < limits.imagePullFailureMemoryMs);
assert(limits.raftHeartbeatMs < limits.electionTimeoutMsMin);
assert(limits.electionTimeoutMsMin < limits.electionTimeoutMsMax);
assert(limits.requestBodyBytesMax * 1.5 <= limits.commandBytesMax, "a request fits a command");
// A write accepted just before free space fell below the reserve still fits in it.
assert(limits.requestBodyBytesMax <= limits.diskReserveBytes);
assert(limits.clockDriftMax >= 0 && limits.clockDriftMax < 1);
// A forwarded write outwaits the leader's own commit wait, so its answer is never cut off.
assert(limits.forwardTimeoutMs > limits.proposeTimeoutMs);
