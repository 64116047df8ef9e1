// zstd compression in the deterministic simulator (issue #17 item 5): compression is
// negotiated per peer, so a cluster where only some nodes have it on replicates exactly
// like a plain one, and nodes with it off never receive a compressed datagram (they would
// drop it, as an older build does). Compression composes with sealing, and compressed
// datagrams cut short on the way are counted drops. Each test prints its seed on failure.
#include <cstring>
#include <vector>

#include "engine/rng.h"
#include "gtest/gtest.h"
#include "sim/cluster_sim.h"
#include "wire/packet.h"

namespace scuttle::sim {
namespace {

uint64_t Drops(const Engine& e, wire::DropReason r) {
  return e.stats().decode_drops[static_cast<size_t>(r)];
}

ClusterSimConfig Workload(uint64_t seed, uint32_t nodes) {
  ClusterSimConfig c;
  c.seed = seed;
  c.nodes = nodes;
  c.rounds = 60;
  c.link.loss = 0.05;
  c.keys = 64;
  c.write_rate = 6;
  c.value_min_bytes = 32;
  c.value_max_bytes = 400;
  c.write_stop_round = 40;
  return c;
}

TEST(CompressionSim, MixedClusterReplicatesAndOffNodesNeverSeeCompression) {
  constexpr uint64_t kSeed = 17;
  ClusterSimConfig c = Workload(kSeed, 24);
  // Every third node has compression off (an older build, as far as the wire can tell).
  auto zstd = [](uint32_t node) { return node % 3 != 0; };
  c.configure_engine = [&](uint32_t node, EngineConfig* cfg) {
    if (zstd(node)) cfg->compression.mode = wire::Compression::kZstd;
  };
  ClusterSim sim(c);
  sim.RunRounds(c.rounds);
  const ClusterSimStats& s = sim.Finish();
  EXPECT_EQ(s.invariant_violations, 0u) << "seed " << kSeed;
  EXPECT_TRUE(s.converged) << "seed " << kSeed;
  uint64_t out = 0, in = 0, plain = 0, wire_bytes = 0;
  for (uint32_t i = 0; i < c.nodes; ++i) {
    const Engine& e = sim.engine(i);
    const CompressionStats& cs = e.stats().compression;
    EXPECT_EQ(Drops(e, wire::DropReason::kBadCompression), 0u) << sim.name(i);
    if (zstd(i)) {
      out += cs.compressed_out;
      in += cs.compressed_in;
      plain += cs.plain_bytes_out;
      wire_bytes += cs.wire_bytes_out;
    } else {
      EXPECT_EQ(cs.compressed_out, 0u) << sim.name(i);
      EXPECT_EQ(cs.compressed_in, 0u) << sim.name(i);
      EXPECT_EQ(Drops(e, wire::DropReason::kBadFlags), 0u)
          << sim.name(i) << " was sent a compressed datagram it cannot read";
    }
  }
  EXPECT_GT(out, 0u);
  EXPECT_GT(in, 0u);
  EXPECT_LT(wire_bytes, plain) << "compression saved bytes";
}

TEST(CompressionSim, CompressedAndSealedClusterConverges) {
  constexpr uint64_t kSeed = 18;
  ClusterSimConfig c = Workload(kSeed, 12);
  wire::KeyBytes key;
  key.fill(9);
  wire::Keyring ring;
  ASSERT_TRUE(ring.Install(key).ok());
  c.configure_engine = [&](uint32_t, EngineConfig* cfg) {
    cfg->compression.mode = wire::Compression::kZstd;
    cfg->compression.level = 3;
    cfg->security.keyring = ring;
  };
  ClusterSim sim(c);
  sim.RunRounds(c.rounds);
  const ClusterSimStats& s = sim.Finish();
  EXPECT_EQ(s.invariant_violations, 0u) << "seed " << kSeed;
  EXPECT_TRUE(s.converged) << "seed " << kSeed;
  uint64_t compressed_in = 0, opened = 0;
  for (uint32_t i = 0; i < c.nodes; ++i) {
    compressed_in += sim.engine(i).stats().compression.compressed_in;
    opened += sim.engine(i).stats().security.opened_in;
  }
  EXPECT_GT(compressed_in, 0u);
  EXPECT_GT(opened, compressed_in);
}

// A compressed datagram cut short on the way (its length fields made to agree, so only the
// zstd frame is wrong) is a counted `bad_compression` drop; the cluster still converges.
TEST(CompressionSim, TruncatedCompressedDatagramsAreCountedDrops) {
  constexpr uint64_t kSeed = 19;
  ClusterSimConfig c = Workload(kSeed, 10);
  c.link.loss = 0;
  c.configure_engine = [](uint32_t, EngineConfig* cfg) {
    cfg->compression.mode = wire::Compression::kZstd;
  };
  uint64_t cut = 0;
  c.tamper = [&](uint32_t, uint32_t, std::vector<uint8_t>* d, Rng& rng) {
    wire::PacketHeader h;
    if (d->size() < wire::kHeaderBytes + 16) return false;
    std::memcpy(&h, d->data(), wire::kHeaderBytes);
    if ((h.flags & wire::kFlagCompressed) == 0 || rng.Below(4) != 0) return false;
    const size_t keep = 1 + rng.Below(h.payload_bytes - 1);
    d->resize(wire::kHeaderBytes + keep);
    h.payload_bytes = static_cast<uint32_t>(keep);
    std::memcpy(d->data(), &h, wire::kHeaderBytes);
    ++cut;
    return true;
  };
  ClusterSim sim(c);
  sim.RunRounds(c.rounds);
  const ClusterSimStats& s = sim.Finish();
  EXPECT_EQ(s.invariant_violations, 0u) << "seed " << kSeed;
  EXPECT_TRUE(s.converged) << "seed " << kSeed;
  uint64_t bad = 0;
  for (uint32_t i = 0; i < c.nodes; ++i) bad += Drops(sim.engine(i), wire::DropReason::kBadCompression);
  EXPECT_GT(cut, 0u);
  EXPECT_EQ(bad, cut) << "seed " << kSeed;
}

}  // namespace
}  // namespace scuttle::sim
