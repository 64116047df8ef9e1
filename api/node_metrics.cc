#include "api/node_metrics.h"

#include <iterator>

#include "api/admin_server.h"
#include "api/metrics.h"
#include "engine/delta_applier.h"
#include "engine/engine.h"
#include "engine/membership.h"
#include "wire/packet.h"

namespace scuttle {
namespace {

constexpr MetricType kCounter = MetricType::kCounter;
constexpr MetricType kGauge = MetricType::kGauge;

template <size_t N, typename NameFn>
void ByLabel(MetricsWriter& w, const char* label, const uint64_t (&values)[N], NameFn name,
             size_t first = 0) {
  for (size_t i = first; i < N; ++i) w.Sample(values[i], {{label, name(i)}});
}

// One rendering pass per shard writes that shard's per-engine families, labelled shard="s"
// when the node runs more than one shard; shard 0's pass also writes the node-wide ones
// (membership, decided on shard 0; the admin server's own; live config), unlabelled. A
// single-shard node's one pass therefore writes exactly the families in their usual order.
struct Pass {
  bool node = true;         // write the node-wide families too
  std::string shard_label;  // empty: no shard label

  // Call before declaring node-wide families: their series carry no shard label.
  void NodeWide(MetricsWriter& w) const { w.ClearSeriesLabel(); }
  // Call before declaring per-shard families.
  void PerShard(MetricsWriter& w) const {
    if (!shard_label.empty()) w.SetSeriesLabel("shard", shard_label);
  }
};

const char* Msg(size_t i) { return wire::MessageTypeName(static_cast<wire::MessageType>(i)); }

void TrafficMetrics(MetricsWriter& w, const NodeStats& s, const Pass& p) {  // per shard
  p.PerShard(w);
  // Message type 0 is "none": never sent or accepted, so not a series.
  w.Family("scuttle_received_packets_total", kCounter,
           "Datagrams the engine accepted, by message type.");
  ByLabel(w, "type", s.engine.packets_in, Msg, 1);
  w.Family("scuttle_received_bytes_total", kCounter,
           "Bytes of datagrams the engine accepted, by message type.");
  ByLabel(w, "type", s.engine.bytes_in, Msg, 1);
  w.Family("scuttle_sent_packets_total", kCounter, "Datagrams the engine sent, by message type.");
  ByLabel(w, "type", s.engine.packets_out, Msg, 1);
  w.Family("scuttle_sent_bytes_total", kCounter,
           "Bytes of datagrams the engine sent, by message type.");
  ByLabel(w, "type", s.engine.bytes_out, Msg, 1);
  w.Family("scuttle_decode_drops_total", kCounter,
           "Received datagrams dropped by the decoder, by reason.");
  ByLabel(w, "reason", s.engine.decode_drops,
          [](size_t i) { return wire::DropReasonName(static_cast<wire::DropReason>(i)); });
  w.Family("scuttle_engine_drops_total", kCounter,
           "Packets the engine refused or could not send, by reason.");
  ByLabel(w, "reason", s.engine.engine_drops,
          [](size_t i) { return EngineDropName(static_cast<EngineDrop>(i)); });
  const SecurityStats& sec = s.engine.security;
  w.Family("scuttle_security_drops_total", kCounter,
           "Datagrams dropped before decoding (sealing, replay), by reason; never answered.");
  ByLabel(w, "reason", sec.drops,
          [](size_t i) { return SecurityDropName(static_cast<SecurityDrop>(i)); });
  w.Counter("scuttle_sealed_packets_total", "Datagrams sealed with the primary key.",
            sec.sealed_out);
  w.Counter("scuttle_opened_packets_total", "Sealed datagrams opened and fresh.", sec.opened_in);
  w.Counter("scuttle_plaintext_accepted_total",
            "Clear datagrams accepted while a keyring is set (encrypt_verify_incoming=false).",
            sec.plaintext_in);
  w.Counter("scuttle_unverified_packets_total",
            "Datagrams from sources without a valid return-routability cookie.", sec.unverified_in);
  w.Counter("scuttle_unverified_received_bytes_total",
            "Bytes of datagrams from unverified sources.", sec.unverified_bytes_in);
  w.Counter("scuttle_unverified_sent_bytes_total",
            "Reply bytes sent to unverified sources (at most 3x what each datagram carried).",
            sec.unverified_bytes_out);
  w.Counter("scuttle_unverified_replies_suppressed_total",
            "Replies to unverified sources not sent (allowance or rate limit too small).",
            sec.replies_suppressed);
  w.Counter("scuttle_welcome_refused_total",
            "Welcome (snapshot) requests refused: the source had not proven return routability.",
            sec.welcome_refused);
  const CompressionStats& cmp = s.engine.compression;
  w.Counter("scuttle_compressed_sent_packets_total",
            "Datagrams sent zstd-compressed (--compression=zstd, to peers that advertise it).",
            cmp.compressed_out);
  w.Family("scuttle_compression_sent_bytes_total", kCounter,
           "Payload bytes of compressed datagrams sent, before (stage=plain) and after "
           "(stage=wire) compression.");
  w.Sample(cmp.plain_bytes_out, {{"stage", "plain"}});
  w.Sample(cmp.wire_bytes_out, {{"stage", "wire"}});
  w.Counter("scuttle_incompressible_sent_packets_total",
            "Datagrams to zstd-capable peers sent plain because compression saved nothing.",
            cmp.incompressible_out);
  w.Counter("scuttle_compressed_received_packets_total",
            "Compressed datagrams received and decompressed.", cmp.compressed_in);
  w.Family("scuttle_compression_received_bytes_total", kCounter,
           "Payload bytes of compressed datagrams received, as sent (stage=wire) and "
           "decompressed (stage=plain).");
  w.Sample(cmp.wire_bytes_in, {{"stage", "wire"}});
  w.Sample(cmp.plain_bytes_in, {{"stage", "plain"}});
  w.Family("scuttle_bad_cluster_received_total", kCounter,
           "BadCluster answers received (a peer of another cluster id).");
  w.Sample(s.engine.bad_cluster_received);
  w.Family("scuttle_bad_shard_count_received_total", kCounter,
           "BadCluster answers received from a peer running another shard count.");
  w.Sample(s.engine.bad_shard_count_received);
  w.Family("scuttle_handshake_duration_seconds", MetricType::kHistogram,
           "Handshake latency: our Syn sent to the SynAck from that address accepted.");
  w.Observe(s.handshake_seconds);
  w.Counter("scuttle_handshakes_unmatched_total",
            "SynAcks accepted with no Syn of ours pending to that address.",
            s.handshakes_unmatched);
}

void DeltaMetrics(MetricsWriter& w, const NodeStats& s, const Pass& p) {  // per shard
  p.PerShard(w);
  w.Family("scuttle_delta_parts_applied_total", kCounter,
           "Received delta parts (one per owner node), by outcome of applying them.");
  ByLabel(w, "outcome", s.apply.parts,
          [](size_t i) { return PartOutcomeName(static_cast<PartOutcome>(i)); });
  w.Counter("scuttle_entries_applied_total", "Received entries applied.", s.apply.entries_applied);
  w.Counter("scuttle_entries_skipped_total", "Received entries skipped: already reflected locally.",
            s.apply.entries_skipped);
  w.Counter("scuttle_generations_replaced_total",
            "Replicas replaced by a newer generation of their node (restarts).",
            s.apply.generations_replaced);
  w.Counter("scuttle_delta_parts_built_total", "Delta parts built for peers.", s.build.parts);
  w.Counter("scuttle_delta_entries_built_total", "Entries put into deltas for peers.",
            s.build.entries);
  w.Counter("scuttle_delta_resets_built_total",
            "Delta parts sent as resets (the peer was behind our GC horizon).", s.build.resets);
  w.Counter("scuttle_deltas_truncated_total",
            "Deltas cut short by max_packet_bytes (the rest goes next round).", s.build.truncated);
  w.Family("scuttle_delta_packet_size_bytes", MetricType::kHistogram,
           "Sizes of sent delta-carrying datagrams (SynAck, Ack, Rumor).");
  w.Observe(s.delta_packet_bytes);
  w.Counter("scuttle_replica_resets_total",
            "Replicas discarded and refilled by a reset from a peer.", s.resets);
}

void StateMetrics(MetricsWriter& w, const NodeStats& s, const Pass& p) {
  if (p.node) {
    p.NodeWide(w);
    w.Family("scuttle_members", kGauge, "Known members by state, this node included.");
    for (size_t i = 0; i < 4; ++i) {
      w.Sample(s.members_by_state[i], {{"state", MemberStateName(static_cast<MemberState>(i))}});
    }
    w.Family("scuttle_forgotten_members", kGauge,
             "Forgotten node generations remembered (so stale gossip does not revive them).");
    w.Sample(s.forgotten_remembered);
  }
  p.PerShard(w);
  w.Family("scuttle_keys", kGauge, "Live keys: this node's own (local) and replicas of others.");
  w.Sample(s.keys_local, {{"owner", "local"}});
  w.Sample(s.keys_replicated, {{"owner", "replicated"}});
  w.Family("scuttle_tombstones", kGauge, "Tombstones (deleted keys not yet collected).");
  w.Sample(s.tombstones_local, {{"owner", "local"}});
  w.Sample(s.tombstones_replicated, {{"owner", "replicated"}});
  w.Gauge("scuttle_expiring_keys", "Local keys with a TTL pending.", s.expiring_local);
  w.Family("scuttle_arena_bytes", kGauge,
           "Key/value arena memory over all replicas: allocated, and live (not overwritten).");
  w.Sample(s.arena_allocated_bytes, {{"kind", "allocated"}});
  w.Sample(s.arena_live_bytes, {{"kind", "live"}});
  w.Counter("scuttle_gc_runs_total", "Tombstone GC runs.", s.engine.gc_runs);
  w.Counter("scuttle_tombstones_collected_total", "Tombstones removed by GC.",
            s.engine.tombstones_gced);
  w.Counter("scuttle_ttl_expirations_total",
            "Local keys expired by their TTL (replicated as deletes).", s.engine.keys_expired);
  w.Family("scuttle_key_events_total", kCounter, "Key events (local writes and replication).");
  for (size_t i = 0; i < 3; ++i) {
    w.Sample(s.key_events_by_type[i], {{"event", KeyEventName(static_cast<KeyEvent>(i))}});
  }
  if (p.node) {
    p.NodeWide(w);
    w.Family("scuttle_member_events_total", kCounter, "Membership events.");
    for (size_t i = 0; i < 7; ++i) {
      w.Sample(s.member_events_by_type[i],
               {{"event", MemberEventName(static_cast<MemberEvent>(i))}});
    }
    // Failure detection (docs/detection.md): suspicions, the probes that confirm or clear
    // them, dead verdicts reached here or applied from others, refutations, local health.
    const ProbeStats& pr = s.probe;
    w.Family("scuttle_probe_events_total", kCounter,
             "Failure detection: suspicions, probes, verdicts and refutations, by event.");
    const std::pair<const char*, uint64_t> events[] = {
        {"suspicion", pr.suspicions},
        {"suspicion_from_digest", pr.suspicions_from_digest},
        {"ping_sent", pr.pings_sent},
        {"ping_req_sent", pr.ping_reqs_sent},
        {"ack_sent", pr.acks_sent},
        {"ack_received", pr.acks_received},
        {"relayed", pr.relayed},
        {"relay_drop", pr.relay_drops},
        {"confirmed_dead", pr.confirmed_dead},
        {"verdict_received", pr.verdicts_received},
        {"verdict_applied", pr.verdicts_applied},
        {"verdict_stale", pr.verdicts_stale},
        {"refutation_sent", pr.refutations_sent},
        {"refutation_applied", pr.refutations_applied},
        {"verdict_push", pr.verdict_pushes},
        {"verdict_feedback_knew", pr.verdict_feedback_knew},
        {"verdict_feedback_new", pr.verdict_feedback_new},
        {"verdict_feedback_sent", pr.verdict_replies_sent},
        {"verdict_dropped_full", pr.verdicts_dropped_full},
        {"verdict_cycle", pr.verdict_cycles},
        {"verdict_retired", pr.verdicts_retired},
        {"late_tick", pr.late_ticks},
    };
    for (const auto& [event, value] : events) w.Sample(value, {{"event", event}});
    w.Gauge("scuttle_local_health_max",
            "The highest local health multiplier this node reached (0 = never raised).",
            pr.health_max);
  }
}

void EpidemicMetrics(MetricsWriter& w, const NodeStats& s, const Pass& p) {  // per shard
  p.PerShard(w);
  w.Family("scuttle_gossip_rounds_total", kCounter, "Gossip rounds run.");
  w.Sample(s.gossip_rounds);
  w.Family("scuttle_gossip_round_duration_seconds", MetricType::kHistogram,
           "Time one gossip round (Engine::OnTick) took on the event loop.");
  w.Observe(s.round_seconds);
  w.Counter("scuttle_direct_mails_total", "Direct-mail packets sent.", s.engine.direct_mails);
  w.Counter("scuttle_delta_continuations_total",
            "Extra delta datagrams sent after a reply cut short (--max_datagrams_per_reply).",
            s.engine.continuation_datagrams);
  w.Counter("scuttle_rumor_contacts_total", "Rumor packets sent to peers.",
            s.engine.rumor_contacts);
  w.Counter("scuttle_rumor_cycles_total",
            "Rumor cycles run on their own clock (--rumor_interval_ms) while rumors were hot.",
            s.engine.rumor_cycles);
  w.Family("scuttle_rumor_feedback_total", kCounter,
           "Rumor feedback received: the peer already knew the rumor, or it was new.");
  w.Sample(s.engine.rumor_feedback_knew, {{"peer", "knew"}});
  w.Sample(s.engine.rumor_feedback_new, {{"peer", "new"}});
  w.Gauge("scuttle_rumors_hot", "Hot rumors being spread now.", s.rumors_hot);
  w.Family("scuttle_rumors_total", kCounter,
           "Rumor lifecycle: added (became hot), dropped_full, lost_interest, stale_results.");
  w.Sample(s.rumor.added, {{"event", "added"}});
  w.Sample(s.rumor.dropped_full, {{"event", "dropped_full"}});
  w.Sample(s.rumor.lost_interest, {{"event", "lost_interest"}});
  w.Sample(s.rumor.stale_results, {{"event", "stale_results"}});
  w.Family("scuttle_rumor_contact_results_total", kCounter,
           "Contact results on hot rumors; unnecessary = the peer knew it already.");
  w.Sample(s.rumor.contacts, {{"result", "all"}});
  w.Sample(s.rumor.unnecessary, {{"result", "unnecessary"}});
}

// The loop's fixed microsecond buckets (io/event_loop.h) in seconds.
Histogram LoopHistogram(const io::EventLoopStats& loop) {
  Histogram h;
  // Division, not * 1e-6: 10 / 1e6 is the double nearest 1e-05, so `le` prints as "1e-05".
  for (uint64_t us : io::kIterationBucketUs) h.bounds.push_back(static_cast<double>(us) / 1e6);
  h.counts.assign(std::begin(loop.iteration_buckets), std::end(loop.iteration_buckets));
  h.sum = static_cast<double>(loop.iteration_us_sum) / 1e6;
  h.count = loop.iterations;
  return h;
}

void RuntimeMetrics(MetricsWriter& w, const NodeStats& s, const AdminMetrics& a, const Pass& p) {
  p.PerShard(w);
  w.Family("scuttle_transport_info", kGauge, "The transport in use (value 1).");
  w.Sample(1, {{"name", s.transport_name}});
  w.Counter("scuttle_transport_received_packets_total", "Datagrams received.",
            s.transport.rx_packets);
  w.Counter("scuttle_transport_received_bytes_total", "Bytes received.", s.transport.rx_bytes);
  w.Counter("scuttle_transport_sent_packets_total", "Datagrams sent.", s.transport.tx_packets);
  w.Counter("scuttle_transport_sent_bytes_total", "Bytes sent.", s.transport.tx_bytes);
  w.Family("scuttle_transport_drops_total", kCounter,
           "Datagrams the transport dropped, by reason.");
  for (size_t i = 0; i < io::kDropReasonCount; ++i) {
    w.Sample(s.transport.drops[i], {{"reason", io::DropName(static_cast<io::Drop>(i))}});
  }
  w.Family("scuttle_transport_operations_total", kCounter,
           "Transport operations: polls, flushes, wakeups, rx_rearms, tx_retries; UDP GSO "
           "sends, the datagrams in them and refused runs resent one by one; GRO batches "
           "received.");
  w.Sample(s.transport.polls, {{"op", "poll"}});
  w.Sample(s.transport.flushes, {{"op", "flush"}});
  w.Sample(s.transport.wakeups, {{"op", "wakeup"}});
  w.Sample(s.transport.rx_rearms, {{"op", "rx_rearm"}});
  w.Sample(s.transport.tx_retries, {{"op", "tx_retry"}});
  w.Sample(s.transport.tx_gso_sends, {{"op", "gso_send"}});
  w.Sample(s.transport.tx_gso_segments, {{"op", "gso_segment"}});
  w.Sample(s.transport.tx_gso_fallbacks, {{"op", "gso_fallback"}});
  w.Sample(s.transport.rx_gro_batches, {{"op", "gro_batch"}});
  w.Family("scuttle_event_loop_iteration_seconds", MetricType::kHistogram,
           "Busy time per event-loop iteration (work, not waiting).");
  w.Observe(LoopHistogram(s.loop));
  w.Family("scuttle_event_loop_iteration_max_seconds", kGauge,
           "Longest event-loop iteration since start.");
  w.Sample(static_cast<double>(s.loop.iteration_us_max) * 1e-6);
  w.Family("scuttle_event_loop_commands_total", kCounter,
           "Commands posted to the loop (API calls) and run.");
  w.Sample(s.loop.commands_run);
  w.Family("scuttle_event_loop_timers_fired_total", kCounter, "Loop timers fired.");
  w.Sample(s.loop.timers_fired);
  w.Family("scuttle_seed_resolutions_total", kCounter, "Seed list resolutions (getaddrinfo).");
  w.Sample(s.seed_resolutions);
  w.Family("scuttle_seed_resolve_failures_total", kCounter, "Seeds that failed to resolve.");
  w.Sample(s.seed_resolve_failures);
  if (p.node) {
    p.NodeWide(w);
    w.Family("scuttle_config_changes_total", kCounter,
             "Live configuration changes (PATCH /v1/config), by field.");
    for (const char* f : kLiveConfigFields) {
      auto it = s.config_changes.find(f);
      w.Sample(it == s.config_changes.end() ? uint64_t{0} : it->second, {{"field", f}});
    }
  }
  p.PerShard(w);
  w.Family("scuttle_watch_log_events", kGauge, "Events retained for watchers to resume from.");
  w.Sample(s.watch.events);
  w.Family("scuttle_watch_log_bytes", kGauge, "Memory of the retained watch events.");
  w.Sample(s.watch.bytes);
  w.Family("scuttle_watch_log_sequence", kGauge, "Sequence number of the newest watch event.");
  w.Sample(s.watch.last_seq);
  w.Family("scuttle_watch_log_evicted_total", kCounter, "Watch events evicted by the log bounds.");
  w.Sample(s.watch.evicted);
  // The admin server's own: once per node, never per shard.
  if (p.node) {
    p.NodeWide(w);
    w.Family("scuttle_watchers", kGauge, "Open /v1/watch streams.");
    w.Sample(a.watchers);
    w.Family("scuttle_watch_rejected_total", kCounter,
             "Watch requests refused (503) past the limit.");
    w.Sample(a.watch_rejected);
  }
  constexpr const char* kOverflowHelp =
      "Overflow events: a watcher (stream or subscription) fell behind and must resync.";
  if (p.node) {
    p.NodeWide(w);
    w.Family("scuttle_watch_overflows_total", kCounter, kOverflowHelp);
    w.Sample(a.watch_overflows, {{"reader", "http"}});
  }
  p.PerShard(w);
  w.Family("scuttle_watch_overflows_total", kCounter, kOverflowHelp);
  w.Sample(s.subscription_overflows, {{"reader", "subscription"}});
  if (p.node) {
    p.NodeWide(w);
    w.Family("scuttle_watch_events_sent_total", kCounter, "Events written to /v1/watch streams.");
    w.Sample(a.watch_events_sent);
  }
}

}  // namespace

std::string RenderMetrics(const std::string& node_name, Generation generation,
                          const NodeStats& stats, const AdminMetrics& admin) {
  return RenderMetrics(node_name, generation, std::span<const NodeStats>(&stats, 1), admin);
}

std::string RenderMetrics(const std::string& node_name, Generation generation,
                          std::span<const NodeStats> shards, const AdminMetrics& admin) {
  MetricsWriter w;
  w.Family("scuttle_node_info", kGauge, "This node (value 1).");
  w.Sample(1, {{"name", node_name}});
  w.Family("scuttle_node_generation", kGauge, "This node's generation (microseconds at start).");
  w.Sample(generation);
  if (shards.empty()) return w.Take();
  // Pass 0 writes shard 0's series and the node-wide families, in the single-shard order;
  // the passes of shards 1.. append their series to the families pass 0 declared.
  for (size_t i = 0; i < shards.size(); ++i) {
    Pass p;
    p.node = i == 0;
    if (shards.size() > 1) p.shard_label = std::to_string(i);
    const NodeStats& s = shards[i];
    TrafficMetrics(w, s, p);
    DeltaMetrics(w, s, p);
    StateMetrics(w, s, p);
    EpidemicMetrics(w, s, p);
    RuntimeMetrics(w, s, admin, p);
    w.ClearSeriesLabel();
  }
  return w.Take();
}

}  // namespace scuttle
