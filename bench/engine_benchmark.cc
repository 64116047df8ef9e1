// scuttle_micro: micro benchmarks of the seed-000 delta path (DESIGN §12), each read as a
// ratio to BM_Memcpy65507 (one datagram's worth of memcpy) measured in the same run.
//
//   BM_DeltaBuild/owners:O/keys:K/missing:M  plan + encode the delta a peer missing the last
//                                            M versions of each of O owners (K keys each)
//                                            needs; must not grow with K (version index).
//   BM_DeltaBuildFull                        plan + encode one full 65,507-byte delta.
//   BM_DeltaBuildFullCached                  the same digest again: DeltaBuilder reuses its
//                                            plan, so this is the write alone (a repeated
//                                            Syn, and the second Plan of every SynAck).
//   BM_DeltaApply                            decode + apply a fresh full delta of random
//                                            overwrites to a 1M-key replica.
//   BM_DeltaApplyWarm                        the same into a 10k-key replica (cache-warm).
//   BM_DeltaApplyCatchUp                     catch-up inserts into an empty replica (up to 1M).
//   BM_Memcpy65507                           the baseline.
//
// Counters: entries per delta, bytes per datagram, and the state's overhead per key beyond
// key and value bytes — as the engine estimates it (NodeState::OverheadBytes) and as
// measured (heap via mallinfo2, RSS via /proc) around building the state.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/delta_fixture.h"
#include "engine/cluster.h"
#include "engine/delta_applier.h"
#include "engine/node_state.h"
#include "wire/packet.h"

namespace scuttle::bench {
namespace {

// O owners with K keys each; owner 0 is the local node, the others are replicas held by it
// (the delta builder treats every NodeState alike). Built once per (O, K) and cached,
// because 1M keys take about a second to insert.
struct OwnersState {
  std::unique_ptr<Cluster> cluster;
  std::vector<NodeState*> owners;
  size_t keys = 0;
  double engine_overhead_per_key = 0;  // NodeState::OverheadBytes() / num_keys
  double heap_overhead_per_key = 0;    // heap delta / keys - (key + value bytes)
  // RSS delta / keys - (key + value bytes). Only meaningful for the first state built in the
  // process: later states reuse heap pages a freed state left resident (it can go negative).
  double rss_overhead_per_key = 0;
};

std::string OwnerName(size_t i) {
  std::string name = std::to_string(i);
  return "owner-" + std::string(name.size() < 3 ? 3 - name.size() : 0, '0') + name;
}

void SetOverheadCounters(benchmark::State& state, const OwnersState& s) {
  state.counters["overhead_B_per_key"] = s.engine_overhead_per_key;
  state.counters["heap_overhead_B_per_key"] = s.heap_overhead_per_key;
  state.counters["rss_overhead_B_per_key"] = s.rss_overhead_per_key;
}

std::unique_ptr<OwnersState> BuildOwners(size_t num_owners, size_t keys_per_owner) {
  auto s = std::make_unique<OwnersState>();
  const size_t heap0 = HeapBytesInUse();
  const size_t rss0 = RssBytes();
  s->cluster = std::make_unique<Cluster>(OwnerName(0), 1);
  s->owners.push_back(&s->cluster->self());
  for (size_t i = 1; i < num_owners; ++i) {
    bool replaced = false;
    s->owners.push_back(s->cluster->Upsert(OwnerName(i), 1, &replaced));
  }
  size_t overhead = 0;
  for (NodeState* owner : s->owners) {
    FillOwner(*owner, keys_per_owner);
    if (owner->num_keys() != keys_per_owner) std::abort();  // a MakeKey collision
    overhead += owner->OverheadBytes();
  }
  s->keys = num_owners * keys_per_owner;
  const double kv = kKeyBytes + kValueBytes;
  const double keys = static_cast<double>(s->keys);
  s->engine_overhead_per_key = static_cast<double>(overhead) / keys;
  s->heap_overhead_per_key = static_cast<double>(HeapBytesInUse() - heap0) / keys - kv;
  s->rss_overhead_per_key = static_cast<double>(RssBytes() - rss0) / keys - kv;
  return s;
}

// One cached state at a time: a new (O, K) frees the previous one first, so the heap and
// RSS deltas measured while building are this state's alone.
const OwnersState& Owners(size_t num_owners, size_t keys_per_owner) {
  static std::unique_ptr<OwnersState> cached;
  static size_t cached_owners = 0;
  if (cached == nullptr || cached_owners != num_owners ||
      cached->keys != num_owners * keys_per_owner) {
    cached.reset();
    cached = BuildOwners(num_owners, keys_per_owner);
    cached_owners = num_owners;
  }
  return *cached;
}

void BM_Memcpy65507(benchmark::State& state) {
  std::vector<uint8_t> src(wire::kMaxUdpPayloadBytes, 0x5a);
  std::vector<uint8_t> dst(wire::kMaxUdpPayloadBytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * src.size()));
}

// Encodes deltas for `peer` until the timer says stop; reports entries and bytes.
void RunDeltaBuild(benchmark::State& state, const OwnersState& s, const PeerDigest& peer,
                   bool reuse_plans = false) {
  DeltaEncoder encoder;
  encoder.reuse_plans(reuse_plans);
  size_t bytes = 0;
  for (auto _ : state) {
    const std::span<const uint8_t> packet = encoder.Encode(*s.cluster, peer.packet());
    if (packet.empty()) {
      state.SkipWithError("encode failed (planning bug)");
      return;
    }
    bytes = packet.size();
    benchmark::DoNotOptimize(packet.data());
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["entries"] = static_cast<double>(encoder.stats().entries) / iters;
  state.counters["parts"] = static_cast<double>(encoder.stats().parts) / iters;
  state.counters["datagram_bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  SetOverheadCounters(state, s);
}

void BM_DeltaBuild(benchmark::State& state) {
  const size_t num_owners = static_cast<size_t>(state.range(0));
  const size_t keys = static_cast<size_t>(state.range(1));
  const Version missing = static_cast<Version>(state.range(2));
  const OwnersState& s = Owners(num_owners, keys);
  std::vector<PeerDigest::Row> rows;
  for (const NodeState* owner : s.owners) {
    rows.push_back({owner, owner->max_version() - missing});
  }
  PeerDigest peer(rows);
  RunDeltaBuild(state, s, peer);
}

// A full datagram from a 1M-key owner (≥ 100k as specified): the peer holds the first half,
// so the delta is the ~620 entries above version 500,000 that fit 65,507 bytes.
constexpr size_t kFullKeys = 1000000;

void BM_DeltaBuildFull(benchmark::State& state) {
  const OwnersState& s = Owners(1, kFullKeys);
  PeerDigest peer({{s.owners[0], kFullKeys / 2}});
  RunDeltaBuild(state, s, peer);
}

void BM_DeltaBuildFullCached(benchmark::State& state) {
  const OwnersState& s = Owners(1, kFullKeys);
  PeerDigest peer({{s.owners[0], kFullKeys / 2}});
  RunDeltaBuild(state, s, peer, /*reuse_plans=*/true);
}

// BM_DeltaApply method: every iteration decodes and applies a *fresh* full delta, so each
// one does the real work (hash lookup, version-index upkeep, arena append) instead of
// hitting the "stale" shortcut. Deltas are pre-encoded in batches of kBatch consecutive
// datagrams (each starting at the previous one's max_version, exactly as the replica's
// digest would ask), outside the timed region (PauseTiming once per batch, so its cost is
// amortized over kBatch iterations). Shapes:
//   - kOverwrite: an owner with K keys keeps overwriting random keys; the replica holds the
//     same K keys, so every entry replaces a key (random places in a K-key table). The
//     replica's arena compaction, triggered when overwrites leave more garbage than live
//     bytes, is part of apply's amortized cost and is included.
//   - kCatchUp: the replica starts empty and receives the owner's K keys in version order,
//     every entry a fresh insert (table growth included); when it has them all it is reset
//     (untimed) and starts over.
enum class ApplyShape { kOverwrite, kCatchUp };

class ApplyFixture {
 public:
  static constexpr size_t kBatch = 32;

  ApplyFixture(ApplyShape shape, size_t keys)
      : shape_(shape),
        keys_(keys),
        owner_(std::make_unique<Cluster>("owner-000", 1)),
        replica_(std::make_unique<Cluster>("replica", 1)) {
    FillOwner(owner_->self(), keys);
    bool replaced = false;
    NodeState* r = replica_->Upsert("owner-000", 1, &replaced);
    if (shape == ApplyShape::kOverwrite) {
      FillReplica(*r, keys);
      planned_max_ = keys;
    }
    applier_ = std::make_unique<DeltaApplier>(replica_.get(), Limits{}, nullptr);
  }

  ApplyShape shape() const { return shape_; }
  size_t keys() const { return keys_; }
  const NodeState& replica_owner() const { return *replica_->Find("owner-000"); }
  DeltaApplier& applier() { return *applier_; }

  // Next datagram to apply; refills the batch when it runs out. `pause`/`resume` are called
  // around the (untimed) refill so the caller can stop the timer.
  template <typename Pause, typename Resume>
  const std::vector<uint8_t>& Next(Pause pause, Resume resume) {
    if (cursor_ == batch_.size()) {
      pause();
      Refill();
      resume();
    }
    return batch_[cursor_++];
  }

 private:
  void Refill() {
    NodeState& owner = owner_->self();
    if (shape_ == ApplyShape::kOverwrite) {
      // Keep the owner ≥ kBatch full deltas (~620 entries each) ahead of the replica.
      char key[kKeyBytes];
      char value[kValueBytes];
      while (owner.max_version() < planned_max_ + kBatch * 800) {
        const uint64_t i = rng_() % keys_;
        MakeKey(i, key);
        MakeValue(i, ++round_, value);
        owner.Set({key, kKeyBytes}, {value, kValueBytes});
      }
    } else if (planned_max_ == owner.max_version()) {
      // The replica caught up: empty it and start the catch-up again.
      replica_->Find("owner-000")->ResetTo(0);
      planned_max_ = 0;
    }
    batch_.clear();
    cursor_ = 0;
    for (size_t b = 0; b < kBatch && planned_max_ < owner.max_version(); ++b) {
      PeerDigest peer({{&owner, planned_max_}});
      const std::span<const uint8_t> packet = encoder_.Encode(*owner_, peer.packet());
      wire::DecodedPacket decoded;
      wire::DropReason reason;
      if (packet.empty() || !wire::Decode(packet, wire::DecodeLimits{}, &decoded, &reason) ||
          decoded.num_parts() != 1) {
        std::abort();
      }
      planned_max_ = decoded.part(0).max_version;
      batch_.emplace_back(packet.begin(), packet.end());
    }
  }

  uint64_t rng_() {
    rng_state_ += 0x9e3779b97f4a7c15ull;
    uint64_t z = rng_state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  ApplyShape shape_;
  size_t keys_;
  std::unique_ptr<Cluster> owner_;
  std::unique_ptr<Cluster> replica_;
  std::unique_ptr<DeltaApplier> applier_;
  DeltaEncoder encoder_;
  std::vector<std::vector<uint8_t>> batch_;
  size_t cursor_ = 0;
  Version planned_max_ = 0;
  uint64_t round_ = 0;
  uint64_t rng_state_ = 42;
};

// One fixture at a time, shared by the repetitions of a shape (deltas keep coming); a new
// shape frees the previous one first.
ApplyFixture& ApplyFixtureFor(ApplyShape shape, size_t keys) {
  static std::unique_ptr<ApplyFixture> fixture;
  if (fixture == nullptr || fixture->shape() != shape || fixture->keys() != keys) {
    fixture.reset();
    fixture = std::make_unique<ApplyFixture>(shape, keys);
  }
  return *fixture;
}

void RunDeltaApply(benchmark::State& state, ApplyShape shape, size_t keys) {
  ApplyFixture& fixture = ApplyFixtureFor(shape, keys);
  DeltaApplier& applier = fixture.applier();
  const DeltaApplier::Stats before = applier.stats();
  const wire::DecodeLimits limits;
  size_t bytes = 0;
  for (auto _ : state) {
    const std::vector<uint8_t>& datagram =
        fixture.Next([&] { state.PauseTiming(); }, [&] { state.ResumeTiming(); });
    wire::DecodedPacket pkt;
    wire::DropReason reason;
    if (!wire::Decode(datagram, limits, &pkt, &reason)) {
      state.SkipWithError("decode failed");
      return;
    }
    applier.Apply(pkt, /*now_us=*/0);
    bytes = datagram.size();
  }
  const DeltaApplier::Stats& after = applier.stats();
  const size_t applied = static_cast<size_t>(PartOutcome::kApplied);
  if (after.parts[applied] - before.parts[applied] !=
      static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("a delta was not applied (gap/stale): the fixture is wrong");
    return;
  }
  const double iters = static_cast<double>(state.iterations());
  const double entries = static_cast<double>(after.entries_applied - before.entries_applied);
  state.counters["entries"] = entries / iters;
  // Entries applied per second of (CPU) time: 1e9 / this = ns per entry.
  state.counters["entry_rate"] = benchmark::Counter(entries, benchmark::Counter::kIsRate);
  state.counters["datagram_bytes"] = static_cast<double>(bytes);
  state.counters["replica_keys"] = static_cast<double>(fixture.replica_owner().num_keys());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

// Random overwrites into a 1M-key replica (the headline shape).
void BM_DeltaApply(benchmark::State& state) {
  RunDeltaApply(state, ApplyShape::kOverwrite, kFullKeys);
}
// Random overwrites into a 10k-key replica (the table stays in cache).
void BM_DeltaApplyWarm(benchmark::State& state) {
  RunDeltaApply(state, ApplyShape::kOverwrite, 10000);
}
// Catch-up inserts into an empty replica, up to 1M keys.
void BM_DeltaApplyCatchUp(benchmark::State& state) {
  RunDeltaApply(state, ApplyShape::kCatchUp, kFullKeys);
}

double MinOf(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// Order matters only for the cache: the 1M-key owner serves the second DeltaBuild row and
// DeltaBuildFull back to back. With --benchmark_repetitions, a "_min" aggregate joins
// mean/median/stddev (the least-disturbed run on a shared machine).
BENCHMARK(BM_Memcpy65507)->ComputeStatistics("min", MinOf);
BENCHMARK(BM_DeltaBuild)
    ->ArgNames({"owners", "keys", "missing"})
    ->Args({1, 10000, 10})
    ->Args({1, 1000000, 10})
    ->ComputeStatistics("min", MinOf);
BENCHMARK(BM_DeltaBuildFull)->ComputeStatistics("min", MinOf);
BENCHMARK(BM_DeltaBuildFullCached)->ComputeStatistics("min", MinOf);
BENCHMARK(BM_DeltaBuild)
    ->ArgNames({"owners", "keys", "missing"})
    ->Args({100, 10000, 10})
    ->ComputeStatistics("min", MinOf);
BENCHMARK(BM_DeltaApply)->ComputeStatistics("min", MinOf);
BENCHMARK(BM_DeltaApplyWarm)->ComputeStatistics("min", MinOf);
BENCHMARK(BM_DeltaApplyCatchUp)->ComputeStatistics("min", MinOf);

}  // namespace
}  // namespace scuttle::bench

BENCHMARK_MAIN();
