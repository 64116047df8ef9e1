// scuttle_load's closed-loop generator and the datagram exchanges it replays: a recorded
// live handshake or synthetic echo datagrams.
#ifndef SCUTTLE_BENCH_LOAD_GENERATOR_H_
#define SCUTTLE_BENCH_LOAD_GENERATOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "wire/seal.h"

namespace scuttle::bench {

struct Exchange {
  // Plaintext datagrams; `sealed`: the generator seals each copy it sends (GenSealer).
  std::vector<uint8_t> request;
  std::vector<uint8_t> ack;  // empty: none
  size_t reply_bytes = 0;    // as received (sealed: with the trailer)
  bool sealed = false;
  size_t WireBytes(const std::vector<uint8_t>& d) const {
    return d.empty() ? 0 : d.size() + (sealed ? wire::kSealTrailerBytes : 0);
  }
};

// Live handshakes from a fresh client Engine (the Syn, the SynAck size, the Ack); see
// load_generator.cc. shard/shard_count: the client is that engine shard (docs/shards.md),
// for a server shard of a node running shard_count shards.
Exchange RecordHandshake(int gen_fd, uint16_t server_port, bool sealed, uint16_t shard = 0,
                         uint16_t shard_count = 1);

// `sealed`: request and ack become valid plaintext datagrams (header + tagged payload)
// whose sealed form has the given sizes.
Exchange Synthetic(size_t request, size_t reply, size_t ack, bool sealed);

struct GenCounters {
  std::atomic<uint64_t> replies{0};
  std::atomic<uint64_t> stalls{0};
  std::atomic<uint64_t> batches{0};  // recvmmsg calls that returned replies
  size_t reply_min = SIZE_MAX;
  size_t reply_max = 0;
};

// Closed loop: `window` requests in flight; each reply is answered with the Ack (if any)
// and a new request. 50 ms without a reply counts a stall and refills the window.
void Generate(int fd, const Exchange& ex, uint32_t window, const std::atomic<bool>& stop,
              GenCounters& c);

}  // namespace scuttle::bench

#endif  // SCUTTLE_BENCH_LOAD_GENERATOR_H_
