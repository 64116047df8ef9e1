// Benchmark-only helpers for the delta path (seed 000): deterministic key/value payloads,
// owner states of K keys, a peer digest packet saying "I hold up to max - M", and the
// build+encode step of Engine::Send without its digest (an Ack carries only a delta).
//
// Nothing here is engine logic: the helpers drive Cluster/NodeState, DeltaBuilder and
// wire::PacketEncoder exactly as engine/engine.cc does, so the numbers measure the engine.
#ifndef SCUTTLE_BENCH_DELTA_FIXTURE_H_
#define SCUTTLE_BENCH_DELTA_FIXTURE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/cluster.h"
#include "engine/delta_builder.h"
#include "engine/node_state.h"
#include "wire/packet.h"

namespace scuttle::bench {

inline constexpr size_t kKeyBytes = 16;
inline constexpr size_t kValueBytes = 64;
inline constexpr std::string_view kClusterId = "bench";
// A transport send slot: the largest UDP payload plus the encoder's working margin, as
// Engine::Send acquires it.
inline constexpr size_t kSlotBytes = wire::kMaxUdpPayloadBytes + 1024;

// Key i of an owner: "k" + 15 hex digits of a 60-bit scramble of i, so keys look random
// (no sequential-id artefacts); collisions below 2^24 keys are ~2^-13 likely, and FillOwner
// callers check num_keys().
void MakeKey(uint64_t i, char out[kKeyBytes]);
// Value of key i at write number `round`: 64 printable bytes.
void MakeValue(uint64_t i, uint64_t round, char out[kValueBytes]);

// Writes keys [0, n) as the owner would (NodeState::Set: versions max+1 ... max+n).
void FillOwner(NodeState& node, size_t n);
// Builds the replica of an owner filled by FillOwner(n): the same versions through
// ApplyEntry, exactly what a peer that received every delta holds.
void FillReplica(NodeState& node, size_t n);

// Heap bytes in use (glibc mallinfo2: arena + mmapped chunks).
size_t HeapBytesInUse();
// Resident set size of this process, in bytes (/proc/self/statm).
size_t RssBytes();

// A decoded Syn whose digest lists nodes at chosen (gc, max). Owns its datagram, which
// the DecodedPacket views point into.
class PeerDigest {
 public:
  struct Row {
    const NodeState* node;
    Version max_version;
  };
  // REQUIRES: rows fit one packet (they are 56 bytes + name each).
  explicit PeerDigest(const std::vector<Row>& rows);
  PeerDigest(const PeerDigest&) = delete;
  PeerDigest& operator=(const PeerDigest&) = delete;
  const wire::DecodedPacket& packet() const { return packet_; }

 private:
  std::vector<uint8_t> slot_;
  wire::DecodedPacket packet_;
};

// Engine::Send for an Ack: plan the delta `peer` is missing, then write it into a reused
// send slot. Returns the finished datagram (empty on a planning bug).
//
// By default every call plans afresh: the budget alternates by one byte, so DeltaBuilder's
// plan cache (same digest, same state, same budget) never hits and the figure is the full
// plan + write. With reuse_plans(true), a repeated digest reuses the cached plan, as for a
// peer that sends the same Syn again (and for the second Plan of every SynAck).
class DeltaEncoder {
 public:
  DeltaEncoder() : slot_(kSlotBytes) {}
  std::span<const uint8_t> Encode(const Cluster& cluster, const wire::DecodedPacket& peer);
  const DeltaBuilder::Stats& stats() const { return builder_.stats(); }
  void reuse_plans(bool on) { reuse_plans_ = on; }

 private:
  std::vector<uint8_t> slot_;
  DeltaBuilder builder_;
  bool reuse_plans_ = false;
  bool flip_ = false;
};

}  // namespace scuttle::bench

#endif  // SCUTTLE_BENCH_DELTA_FIXTURE_H_
