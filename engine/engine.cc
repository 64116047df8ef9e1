#include "engine/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

const char* EngineDropName(EngineDrop d) {
  switch (d) {
    case EngineDrop::kClusterMismatch: return "cluster_mismatch";
    case EngineDrop::kShardMismatch: return "shard_mismatch";
    case EngineDrop::kSelfConflict: return "self_conflict";
    case EngineDrop::kNodeLimit: return "node_limit";
    case EngineDrop::kNoTxBuffer: return "no_tx_buffer";
    case EngineDrop::kEncodeFailed: return "encode_failed";
    case EngineDrop::kUnexpected: return "unexpected";
    case EngineDrop::kCount: break;
  }
  return "unknown";
}

Engine::Engine(EngineConfig config, PacketSink* sink, EventSink* events)
    : config_(std::move(config)),
      sink_(sink),
      events_(events),
      rng_(config_.rng_seed),
      cluster_(config_.node_name, config_.generation),
      membership_(&config_.membership),
      applier_(&cluster_, config_.limits, events),
      cluster_hash_(wire::ClusterHash(config_.cluster_id)) {
  cluster_.self().endpoint = config_.advertise;
  decode_limits_.max_key_bytes = config_.limits.max_key_bytes;
  decode_limits_.max_value_bytes = config_.limits.max_value_bytes;
  decode_limits_.max_digest_entries = config_.limits.max_nodes;
}

// ---- Local writes ------------------------------------------------------------------------

absl::Status Engine::CheckWrite(std::string_view key, std::string_view value) const {
  const Limits& l = config_.limits;
  if (key.empty()) return absl::InvalidArgumentError("key is empty");
  if (key.size() > l.max_key_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key is ", key.size(), " bytes; the limit is ", l.max_key_bytes));
  }
  if (value.size() > l.max_value_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("value is ", value.size(), " bytes; the limit is ", l.max_value_bytes));
  }
  // A value must fit one packet with its key, or it could never replicate.
  const size_t need = wire::kHeaderBytes + wire::kPacketFixedWireBytes + wire::kPartWireBytes +
                      wire::kMaxNameBytes + wire::kEntryWireBytes + key.size() + value.size() +
                      512;
  if (need > config_.max_packet_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key+value of ", key.size() + value.size(), " bytes cannot fit max_packet_bytes=",
        config_.max_packet_bytes));
  }
  const NodeState& self = cluster_.self();
  if (self.num_keys() >= l.max_keys_per_node && self.Find(key) == NodeState::kNoSlot) {
    return absl::ResourceExhaustedError(
        absl::StrCat("node holds ", self.num_keys(), " keys; the limit is ", l.max_keys_per_node));
  }
  return absl::OkStatus();
}

absl::Status Engine::Set(std::string_view key, std::string_view value, TimeUs now_us) {
  if (absl::Status s = CheckWrite(key, value); !s.ok()) return s;
  last_now_us_ = std::max(last_now_us_, now_us);
  const Version v = cluster_.self().Set(key, value);
  if (events_ != nullptr) events_->OnKey(cluster_.self(), KeyEvent::kSet, key, value, v);
  return absl::OkStatus();
}

absl::Status Engine::SetWithTtl(std::string_view key, std::string_view value, TimeUs ttl_us,
                                TimeUs now_us) {
  if (ttl_us <= 0) return absl::InvalidArgumentError("ttl must be positive");
  if (absl::Status s = CheckWrite(key, value); !s.ok()) return s;
  last_now_us_ = std::max(last_now_us_, now_us);
  const Version v = cluster_.self().SetWithTtl(key, value, now_us + ttl_us);
  if (events_ != nullptr) events_->OnKey(cluster_.self(), KeyEvent::kSet, key, value, v);
  return absl::OkStatus();
}

absl::Status Engine::Delete(std::string_view key, TimeUs now_us) {
  if (key.empty() || key.size() > config_.limits.max_key_bytes) {
    return absl::InvalidArgumentError("bad key");
  }
  last_now_us_ = std::max(last_now_us_, now_us);
  const Version v = cluster_.self().Delete(key, now_us);
  if (v == 0) return absl::NotFoundError(absl::StrCat("no key '", AV(key), "'"));
  if (events_ != nullptr) events_->OnKey(cluster_.self(), KeyEvent::kDeleted, key, {}, v);
  return absl::OkStatus();
}

void Engine::Leave() { cluster_.self().leaving = true; }

// ---- Rounds ------------------------------------------------------------------------------

void Engine::OnTick(TimeUs now_us) {
  last_now_us_ = std::max(last_now_us_, now_us);
  ++stats_.rounds;
  ++cluster_.self().heartbeat;
  ExpireTtl(now_us);
  RunGc(now_us);
  membership_.Update(cluster_, now_us, events_);
  std::vector<Endpoint> peers;
  membership_.ChoosePeers(cluster_, config_.fanout, config_.seeds, rng_, &peers);
  for (const Endpoint& to : peers) SendSyn(to);
}

void Engine::ExpireTtl(TimeUs now_us) {
  NodeState& self = cluster_.self();
  if (self.NextExpiry() > now_us) return;
  stats_.keys_expired += self.ExpireDue(now_us, [&](std::string_view key) {
    if (events_ != nullptr) {
      events_->OnKey(self, KeyEvent::kExpired, key, {}, self.max_version());
    }
  });
}

void Engine::RunGc(TimeUs now_us) {
  ++stats_.gc_runs;
  for (NodeState* node : cluster_.nodes()) {
    stats_.tombstones_gced +=
        node->GcTombstones(now_us, config_.tombstone_grace_us, UINT64_MAX);
  }
}

void Engine::SendSyn(const Endpoint& to) { Send(to, wire::MessageType::kSyn, true, nullptr); }

// ---- Receive path ------------------------------------------------------------------------

void Engine::OnPacket(TimeUs now_us, const Endpoint& from, std::span<const uint8_t> datagram) {
  last_now_us_ = std::max(last_now_us_, now_us);
  wire::DecodedPacket pkt;
  wire::DropReason reason;
  if (!wire::Decode(datagram, decode_limits_, &pkt, &reason)) {
    ++stats_.decode_drops[static_cast<size_t>(reason)];
    return;
  }
  const size_t t = static_cast<size_t>(pkt.type);
  ++stats_.packets_in[t];
  stats_.bytes_in[t] += datagram.size();
  if (!Accept(pkt, from, now_us)) return;
  switch (pkt.type) {
    case wire::MessageType::kSyn:
      HandleSyn(pkt, from);
      break;
    case wire::MessageType::kSynAck:
      HandleSynAck(pkt, from, now_us);
      break;
    case wire::MessageType::kAck:
      applier_.Apply(pkt, now_us);
      break;
    default:
      Drop(EngineDrop::kUnexpected);
      break;
  }
}

// Cluster and shard checks, then membership bookkeeping for the sender and digest.
bool Engine::Accept(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us) {
  if (pkt.type == wire::MessageType::kBadCluster) {
    ++stats_.bad_cluster_received;
    return false;
  }
  if (pkt.header.cluster_hash != cluster_hash_ || pkt.cluster_id != config_.cluster_id) {
    Drop(EngineDrop::kClusterMismatch);
    if (pkt.type == wire::MessageType::kSyn) Send(from, wire::MessageType::kBadCluster, false, nullptr);
    return false;
  }
  if (pkt.shard_count != config_.shard_count || pkt.header.shard != config_.shard) {
    Drop(EngineDrop::kShardMismatch);
    return false;
  }
  ObserveSender(pkt, from, now_us);
  if (pkt.type == wire::MessageType::kSyn || pkt.type == wire::MessageType::kSynAck) {
    ObserveDigest(pkt, now_us);
  }
  return true;
}

void Engine::ObserveSender(const wire::DecodedPacket& pkt, const Endpoint& /*from*/,
                           TimeUs /*now_us*/) {
  const std::string_view name = pkt.Name(*pkt.sender);
  if (name == cluster_.self().name() && pkt.sender->generation > cluster_.self().generation()) {
    Drop(EngineDrop::kSelfConflict);
  }
}

// Learns nodes, generations, addresses and heartbeats from a digest (DESIGN §5).
void Engine::ObserveDigest(const wire::DecodedPacket& pkt, TimeUs now_us) {
  for (const wire::DigestEntry& e : pkt.digest.entries) {
    const std::string_view name = pkt.Name(e.node);
    if (name == cluster_.self().name()) {
      if (e.node.generation > cluster_.self().generation()) Drop(EngineDrop::kSelfConflict);
      continue;
    }
    NodeState* node = cluster_.Find(name);
    if (node != nullptr && e.node.generation < node->generation()) continue;
    if (node == nullptr || e.node.generation > node->generation()) {
      if (node == nullptr && cluster_.size() >= config_.limits.max_nodes) {
        Drop(EngineDrop::kNodeLimit);
        continue;
      }
      bool replaced = false;
      node = cluster_.Upsert(name, e.node.generation, &replaced);
      membership_.OnDiscovered(*node, now_us);
      if (events_ != nullptr) {
        events_->OnMember(*node, replaced ? MemberEvent::kRestarted : MemberEvent::kJoined);
      }
    }
    const Endpoint ep = wire::NodeRefEndpoint(e.node);
    if (ep.valid()) node->endpoint = ep;
    node->leaving = (e.node.flags & wire::kNodeLeaving) != 0;
    if (e.heartbeat > node->heartbeat) {
      node->heartbeat = e.heartbeat;
      membership_.OnHeartbeat(*node, now_us, events_);
    }
  }
}

void Engine::HandleSyn(const wire::DecodedPacket& pkt, const Endpoint& from) {
  Send(from, wire::MessageType::kSynAck, true, &pkt);
}

void Engine::HandleSynAck(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us) {
  applier_.Apply(pkt, now_us);
  Send(from, wire::MessageType::kAck, false, &pkt);
}

// ---- Send path ---------------------------------------------------------------------------

void Engine::Send(const Endpoint& to, wire::MessageType type, bool with_digest,
                  const wire::DecodedPacket* peer) {
  const size_t slot_bytes = config_.max_packet_bytes + 1024;
  std::span<uint8_t> slot = sink_->Acquire(slot_bytes);
  if (slot.size() < slot_bytes) {
    if (!slot.empty()) sink_->Abort();
    Drop(EngineDrop::kNoTxBuffer);
    return;
  }
  const NodeState& self = cluster_.self();
  wire::EncodeOptions opts;
  opts.cluster_id = config_.cluster_id;
  opts.shard = config_.shard;
  opts.shard_count = config_.shard_count;
  opts.max_packet_bytes = config_.max_packet_bytes;
  opts.sender = MakeNodeRef(self, 0);
  wire::PacketEncoder enc(slot, opts);
  // Space: blob vector prefix and digest vector prefix come off the top.
  size_t budget = enc.Remaining() > 64 ? enc.Remaining() - 64 - self.name().size() : 0;
  size_t digest_bytes = 0;
  if (with_digest) {
    // A SynAck keeps at least half the packet for the delta it carries.
    const size_t digest_budget = peer != nullptr ? budget / 2 : budget;
    digest_bytes = digest_builder_.Plan(cluster_, digest_budget);
  }
  size_t blob_bytes = self.name().size() + (with_digest ? digest_builder_.blob_bytes() : 0);
  if (peer != nullptr) {
    delta_builder_.SetPeerDigest(*peer);
    delta_builder_.Plan(cluster_, budget - digest_bytes);
    blob_bytes += delta_builder_.blob_bytes();
  }
  BlobWriter blob{enc.AllocBlob(blob_bytes)};
  bool ok = blob.blob.size() == blob_bytes;
  if (ok) blob.Put(self.name());
  if (ok && with_digest) ok = digest_builder_.Write(enc, blob);
  if (ok && peer != nullptr) ok = delta_builder_.Write(enc, blob);
  std::span<const uint8_t> packet = ok ? enc.Finish(type) : std::span<const uint8_t>();
  delta_builder_.ClearPeer();
  if (packet.empty()) {
    sink_->Abort();
    Drop(EngineDrop::kEncodeFailed);
    return;
  }
  const size_t t = static_cast<size_t>(type);
  ++stats_.packets_out[t];
  stats_.bytes_out[t] += packet.size();
  sink_->Commit(to, packet);
}

}  // namespace scuttle
