// scuttle_compress: zstd per datagram (wire/compress.h) on real delta datagrams, against a
// memcpy of the same datagram in the same run (issue #17 item 5).
//
// The datagrams are real SynAcks: an engine holding keys of one payload kind answers a
// client that knows nothing, with max_packet_bytes 1,400 or 65,507, so what is compressed
// is what scuttled would send (header, FlatBuffers tables, 24-byte entry records, names,
// keys and values). Payload kinds:
//   json      service metadata: "svc/<service>/<instance>" -> a ~200 B JSON object
//   random    "blob/<i>" -> 64 random bytes (incompressible values)
//   counters  "counter/<name>" -> a small decimal number
// Rows: BM_Memcpy (copy the datagram: the baseline), BM_Compress (copy, then compress in
// place: what Engine::Send does after encoding), BM_Decompress (into a bounded buffer).
// Counters: `ratio` = compressed / plain payload bytes; bytes_per_second is of the plain
// datagram, so ns per KB = 1e9 / (bytes_per_second / 1024).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/engine.h"
#include "wire/compress.h"
#include "wire/packet.h"

namespace scuttle::bench {
namespace {

enum Kind { kJson = 0, kRandom = 1, kCounters = 2 };
const char* KindName(int k) { return k == kJson ? "json" : k == kRandom ? "random" : "counters"; }

class CaptureSink final : public PacketSink {
 public:
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    buf_.resize(std::max(min_bytes, wire::kMaxUdpPayloadBytes + 1024));
    return buf_;
  }
  void Commit(const Endpoint&, std::span<const uint8_t> packet) override {
    out.emplace_back(packet.begin(), packet.end());
  }
  void Abort() override {}
  std::vector<std::vector<uint8_t>> out;

 private:
  std::vector<uint8_t> buf_;
};

void Fill(Engine& e, int kind) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  static const char* kServices[] = {"checkout", "payments", "catalog", "search", "auth",
                                    "inventory", "shipping", "reviews"};
  static const char* kZones[] = {"eu-west-1a", "eu-west-1b", "us-east-1c", "ap-south-1a"};
  char key[96], value[512];
  for (int i = 0; i < 4000; ++i) {
    int vlen = 0;
    if (kind == kJson) {
      const char* svc = kServices[next() % 8];
      std::snprintf(key, sizeof(key), "svc/%s/%s-%05llx", svc, svc,
                    static_cast<unsigned long long>(next() & 0xfffff));
      vlen = std::snprintf(
          value, sizeof(value),
          "{\"service\":\"%s\",\"addr\":\"10.%d.%d.%d:%d\",\"zone\":\"%s\",\"version\":"
          "\"1.%d.%d\",\"healthy\":%s,\"weight\":%d,\"tags\":[\"http\",\"grpc\"],"
          "\"started\":17333%05d}",
          svc, static_cast<int>(next() % 256), static_cast<int>(next() % 256),
          static_cast<int>(next() % 256), 8000 + static_cast<int>(next() % 100),
          kZones[next() % 4], static_cast<int>(next() % 50), static_cast<int>(next() % 10),
          next() % 10 ? "true" : "false", static_cast<int>(next() % 100),
          static_cast<int>(next() % 100000));
    } else if (kind == kRandom) {
      std::snprintf(key, sizeof(key), "blob/%06d", i);
      for (int b = 0; b < 64; b += 8) {
        const uint64_t r = next();
        std::memcpy(value + b, &r, 8);
      }
      vlen = 64;
    } else {
      std::snprintf(key, sizeof(key), "counter/requests_%s_%d", kServices[i % 8], i);
      vlen = std::snprintf(value, sizeof(value), "%llu",
                           static_cast<unsigned long long>(next() % 1000000));
    }
    if (!e.Set(key, std::string_view(value, static_cast<size_t>(vlen)), 1).ok()) std::abort();
  }
}

// The SynAck a server holding `kind` keys sends a client that knows nothing.
std::vector<uint8_t> Datagram(int kind, size_t max_packet_bytes) {
  CaptureSink server_out, client_out;
  EngineConfig sc;
  sc.cluster_id = "bench";
  sc.node_name = "server-node-1";
  sc.advertise = Endpoint::V4(0x0a000001, 7946);
  sc.max_packet_bytes = max_packet_bytes;
  sc.security.guard.enabled = false;  // one exchange, no cookie round trip
  Engine server(sc, &server_out, nullptr);
  Fill(server, kind);
  EngineConfig cc = sc;
  cc.node_name = "client-node-2";
  cc.advertise = Endpoint::V4(0x0a000002, 7946);
  cc.digest_summaries = false;  // the classic Syn: the SynAck carries the delta
  Engine client(cc, &client_out, nullptr);
  client.SendSyn(sc.advertise);
  server.OnPacket(1, cc.advertise, client_out.out.at(0));
  return server_out.out.at(0);
}

struct Fixture {
  std::vector<uint8_t> plain;
  std::vector<uint8_t> compressed;
};

const Fixture& Get(int kind, size_t size, int level) {
  static std::vector<std::pair<std::tuple<int, size_t, int>, Fixture>> cache;
  for (auto& [k, f] : cache) {
    if (k == std::make_tuple(kind, size, level)) return f;
  }
  Fixture f;
  f.plain = Datagram(kind, size);
  wire::Compressor c(level, wire::kMaxUdpPayloadBytes);
  f.compressed = f.plain;
  f.compressed.resize(c.CompressInPlace(f.compressed, f.compressed.size()));
  cache.emplace_back(std::make_tuple(kind, size, level), std::move(f));
  return cache.back().second;
}

void Label(benchmark::State& state, const Fixture& f, int kind) {
  state.SetLabel(std::string(KindName(kind)) + " " + std::to_string(f.plain.size()) + " B");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.plain.size()));
  state.counters["ratio"] = static_cast<double>(f.compressed.size() - wire::kHeaderBytes) /
                            static_cast<double>(f.plain.size() - wire::kHeaderBytes);
}

void BM_Memcpy(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  const Fixture& f = Get(kind, static_cast<size_t>(state.range(1)), static_cast<int>(state.range(2)));
  std::vector<uint8_t> slot(f.plain.size());
  for (auto _ : state) {
    std::memcpy(slot.data(), f.plain.data(), f.plain.size());
    benchmark::DoNotOptimize(slot.data());
    benchmark::ClobberMemory();
  }
  Label(state, f, kind);
}

void BM_Compress(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  const int level = static_cast<int>(state.range(2));
  const Fixture& f = Get(kind, static_cast<size_t>(state.range(1)), level);
  wire::Compressor c(level, wire::kMaxUdpPayloadBytes);
  std::vector<uint8_t> slot(f.plain.size());
  for (auto _ : state) {
    std::memcpy(slot.data(), f.plain.data(), f.plain.size());
    benchmark::DoNotOptimize(c.CompressInPlace(slot, slot.size()));
    benchmark::ClobberMemory();
  }
  Label(state, f, kind);
}

void BM_Decompress(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  const int level = static_cast<int>(state.range(2));
  const Fixture& f = Get(kind, static_cast<size_t>(state.range(1)), level);
  wire::Compressor c(level, wire::kMaxUdpPayloadBytes);
  std::vector<uint8_t> out(wire::kMaxUdpPayloadBytes + 64);
  if (f.compressed.size() == f.plain.size()) {
    state.SkipWithError("sent plain: compression saves nothing");
    return;
  }
  for (auto _ : state) {
    std::span<const uint8_t> d;
    wire::DecompressError err;
    benchmark::DoNotOptimize(c.Decompress(f.compressed, out, &d, &err));
    benchmark::ClobberMemory();
  }
  Label(state, f, kind);
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"kind", "bytes", "level"});
  for (int kind : {kJson, kRandom, kCounters}) {
    for (int64_t size : {int64_t{1400}, int64_t{65507}}) {
      for (int level : {-1, 1, 3}) b->Args({kind, size, level});
    }
  }
}

BENCHMARK(BM_Memcpy)->Apply(Args);
BENCHMARK(BM_Compress)->Apply(Args);
BENCHMARK(BM_Decompress)->Apply(Args);

}  // namespace
}  // namespace scuttle::bench

BENCHMARK_MAIN();
