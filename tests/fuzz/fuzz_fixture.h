// Shared by the decode/apply fuzz target, its corpus replayer and the seed-corpus generator:
// the engine under test ("self" in cluster "fuzz"), the peers it knows, a pre-populated
// replica Cluster for direct DeltaApplier use, and a PacketSink that checks every packet
// the engine emits.
//
// Everything is deterministic: one input reproduces one execution bit for bit.
#ifndef SCUTTLE_TESTS_FUZZ_FUZZ_FIXTURE_H_
#define SCUTTLE_TESTS_FUZZ_FUZZ_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/cluster.h"
#include "engine/engine.h"
#include "wire/seal.h"
#include "wire/packet.h"

namespace scuttle::fuzz {

inline constexpr std::string_view kClusterId = "fuzz";
inline constexpr std::string_view kSelfName = "self";
// The engine's clock at the start of every execution (an arbitrary, non-zero time).
inline constexpr TimeUs kStartUs = 1'000'000 * kUsPerSec;

Endpoint PeerEndpoint(int i);
// The engine under test: node "self", generation 7, cluster "fuzz", two seeds.
EngineConfig SelfConfig();
// A peer engine "n<i>" of the same cluster (corpus generation).
EngineConfig PeerConfig(int i);

// Fills a replica cluster whose self is "self" with remote nodes in every interesting
// seed-000 situation:
//   n1 (gen 3): 40 keys, versions 1..60 with overwrites and deletes, GC'd up to 20;
//   n2 (gen 1): mid-reset (ResetTo(gc=30): max 0 < gc 30);
//   n3 (gen 9): 5 keys, nothing GC'd.
void PopulateReplica(Cluster* cluster);

// A valid Ack from "n1" carrying parts for n1, n2, n3 that bring a fresh engine to the
// state PopulateReplica describes (minus GC, which only the owner's own rounds do).
std::vector<uint8_t> WarmupPacket();

// A packet described field by field, encoded with wire::PacketEncoder. Lets the corpus
// generator write what a correct engine never sends (gaps, resets, truncations, foreign
// clusters) while staying a well-formed datagram.
struct EntrySpec {
  Version version = 0;
  std::string key;
  std::string value;
  bool tombstone = false;
};
struct PartSpec {
  std::string node;
  Generation generation = 1;
  Version from = 0;
  Version gc = 0;
  Version max = 0;
  Version source_max = 0;  // 0: same as max
  uint8_t flags = 0;
  std::vector<EntrySpec> entries;
};
struct DigestSpec {
  std::string node;
  Generation generation = 1;
  uint64_t heartbeat = 0;
  Version gc = 0;
  Version max = 0;
  uint8_t flags = 0;  // wire::kNodeLeaving
};
struct PacketSpec {
  wire::MessageType type = wire::MessageType::kSyn;
  std::string cluster_id = std::string(kClusterId);
  std::string sender = "n1";
  Generation sender_generation = 1;
  uint16_t shard = 0;
  uint16_t shard_count = 1;
  bool partial = false;
  std::vector<DigestSpec> digest;  // Syn and SynAck only
  std::vector<PartSpec> parts;     // SynAck and Ack only
};
// A process-wide, 8-aligned send slot of kMaxUdpPayloadBytes + 1024 bytes (reused: fresh
// 66 KB allocations per execution dominate the fuzzer's time under ASan).
std::span<uint8_t> ScratchSlot();
// Returns the datagram, or aborts when the spec does not fit one packet.
std::vector<uint8_t> Encode(const PacketSpec& spec);

// A PacketSink that lends one reusable buffer and checks each committed datagram: it must
// decode (the engine must never emit what a peer would drop). Counts what it saw.
class CheckingSink : public PacketSink {
 public:
  std::span<uint8_t> Acquire(size_t min_bytes) override;
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override;
  void Abort() override {}

  size_t committed = 0;
  // When set, sealed datagrams are opened with it before decoding (the sealed path).
  const wire::Keyring* keyring = nullptr;
  // When set, committed datagrams are kept (corpus generation).
  bool keep = false;
  std::vector<std::vector<uint8_t>> kept;
};

// prefix + decimal n. (gcc 12 at -O3 misreports -Wrestrict on `"literal" + std::string`.)
template <typename N>
std::string Cat(std::string_view prefix, N n) {
  std::string s(prefix);
  s.append(std::to_string(n));
  return s;
}

// Reports a broken invariant and aborts (libFuzzer records the input as a crash).
[[noreturn]] void Fail(const char* what, const std::string& detail);

// Checks one NodeState's internal invariants (DESIGN §7): exactly one version-index slot
// per key, ascending, none above max_version; every key finds its own slot; tombstone count.
void CheckNodeState(const NodeState& node);

}  // namespace scuttle::fuzz

#endif  // SCUTTLE_TESTS_FUZZ_FUZZ_FIXTURE_H_
