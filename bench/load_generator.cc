// scuttle_load's generator and exchanges (bench/load_generator.h).
#include "bench/load_generator.h"

#include "bench/load_common.h"
#include "engine/engine.h"

namespace scuttle::bench {
namespace {

class CaptureSink final : public PacketSink {
 public:
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    buf_.resize(std::max(min_bytes, kMaxDatagram + 1024));
    return buf_;
  }
  void Commit(const Endpoint& /*to*/, std::span<const uint8_t> packet) override {
    out.emplace_back(packet.begin(), packet.end());
  }
  void Abort() override {}
  std::vector<std::vector<uint8_t>> out;

 private:
  std::vector<uint8_t> buf_;
};

}  // namespace

// Live handshakes from a fresh client Engine: returns the Syn it sent, the size of the
// SynAck it got, and the Ack it answered with, from its second handshake. The first one
// teaches it the server's return-routability cookie (that SynAck, to a still unverified
// source, is capped at 3x the Syn: engine/reply_guard.h); the second Syn and its Ack echo
// the cookie, so the server answers replays of them as it answers a verified peer. The
// client learns at most the capped first SynAck, so the Syn still asks for (nearly)
// everything. `sealed`: the client is keyed, and the recorded datagrams are opened back
// to plaintext for the generator to re-seal with its own counter. `gen_fd` is connected
// to the server.
Exchange RecordHandshake(int gen_fd, uint16_t server_port, bool sealed, uint16_t shard,
                         uint16_t shard_count) {
  const Endpoint server = Endpoint::V4(INADDR_LOOPBACK, server_port);
  CaptureSink sink;
  EngineConfig c;
  c.cluster_id = "bench-load";
  c.node_name = "load-client";
  c.generation = 1;
  c.advertise = Endpoint::V4(INADDR_LOOPBACK, PortOf(gen_fd));
  c.rng_seed = 11;
  c.shard = shard;
  c.shard_count = shard_count;
  if (sealed) c.security.keyring = BenchKeyring();
  // The classic three-message handshake (a Syn with the full digest, a SynAck carrying the
  // delta): with compact digests the Syn is a summary and the delta comes in a fourth
  // message, which this closed loop (one reply per request) does not model.
  if constexpr (requires { c.digest_summaries; }) c.digest_summaries = false;
  Engine client(c, &sink, nullptr);
  Exchange ex;
  std::vector<uint8_t> buf(kBufBytes);
  for (int round = 0; round < 2; ++round) {
    sink.out.clear();
    client.SendSyn(server);
    if (sink.out.size() != 1) Die("client did not produce one Syn");
    ex.request = sink.out[0];
    sink.out.clear();
    if (::send(gen_fd, ex.request.data(), ex.request.size(), 0) < 0) Die("send Syn");
    pollfd pfd{gen_fd, POLLIN, 0};
    if (::poll(&pfd, 1, 2000) != 1) Die("no SynAck within 2 s");
    const ssize_t n = ::recv(gen_fd, buf.data(), buf.size(), 0);
    if (n <= 0) Die("recv SynAck");
    ex.reply_bytes = static_cast<size_t>(n);
    client.OnPacket(io::MonotonicNowUs(), server, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    if (sink.out.size() != 1) Die("client did not answer the SynAck with one Ack");
    ex.ack = sink.out[0];
    if (::send(gen_fd, ex.ack.data(), ex.ack.size(), 0) < 0) Die("send Ack");
  }
  if (sealed) {
    ex.sealed = true;
    for (std::vector<uint8_t>* d : {&ex.request, &ex.ack}) {
      std::vector<uint8_t> plain(d->size());
      wire::Opened opened;
      wire::OpenError err;
      if (!wire::Open(*d, BenchKeyring(), plain, &opened, &err)) Die("open a recorded datagram");
      d->assign(opened.datagram.begin(), opened.datagram.end());
    }
  }
  return ex;
}

// `sealed`: request and ack become valid plaintext datagrams (header + tagged payload)
// whose sealed form has the given sizes.
Exchange Synthetic(size_t request, size_t reply, size_t ack, bool sealed) {
  if (sealed) {  // echo only (no ack)
    Exchange ex;
    ex.request.assign(request - wire::kSealTrailerBytes, 0x5a);
    WriteHeader(ex.request.data(), ex.request.size());
    ex.request[wire::kHeaderBytes] = kReqTag;
    ex.reply_bytes = reply;
    ex.sealed = true;
    return ex;
  }
  Exchange ex;
  ex.request.assign(std::max<size_t>(request, 1), 0x5a);
  ex.request[0] = kReqTag;
  if (ack > 0) {
    ex.ack.assign(ack, 0x5a);
    ex.ack[0] = kAckTag;
  }
  ex.reply_bytes = reply;
  return ex;
}

// Closed loop: `window` requests in flight; each reply is answered with the Ack (if any)
// and a new request, sent with one sendmmsg per received batch. 50 ms without a reply
// counts a stall and refills the window (datagrams lost to a full socket buffer).
void Generate(int fd, const Exchange& ex, uint32_t window, const std::atomic<bool>& stop, GenCounters& c) {
  Mapped rx_bufs(size_t{window} * kBufBytes);
  std::vector<mmsghdr> rx(window), tx(2 * size_t{window});
  std::vector<iovec> rx_iov(window);
  iovec req_iov{const_cast<uint8_t*>(ex.request.data()), ex.request.size()};
  iovec ack_iov{const_cast<uint8_t*>(ex.ack.data()), ex.ack.size()};
  for (uint32_t i = 0; i < window; ++i) {
    rx_iov[i] = {rx_bufs.data + size_t{i} * kBufBytes, kBufBytes};
    rx[i].msg_hdr = {};
    rx[i].msg_hdr.msg_iov = &rx_iov[i];
    rx[i].msg_hdr.msg_iovlen = 1;
  }
  for (auto& m : tx) {
    m.msg_hdr = {};
    m.msg_hdr.msg_iovlen = 1;
  }
  // Sealed: every datagram sent gets its own slot (sendmmsg copies, so slots are free
  // again after each batch), is copied there and sealed in place with the next counter.
  GenSealer sealer;
  sealer.key = &BenchKeyring().primary();
  sealer.cipher = wire::ResolveCipher(wire::Cipher::kAuto);
  const size_t slot_bytes =
      (std::max(ex.request.size(), ex.ack.size()) + wire::kSealTrailerBytes + 63) & ~size_t{63};
  Mapped tx_bufs(ex.sealed ? tx.size() * slot_bytes : 4096);
  std::vector<iovec> tx_iov(tx.size());
  auto put = [&](uint32_t k, const std::vector<uint8_t>& plain, iovec* shared) {
    if (!ex.sealed) {
      tx[k].msg_hdr.msg_iov = shared;
      return;
    }
    uint8_t* slot = tx_bufs.data + k * slot_bytes;
    tx_iov[k] = {slot, sealer.SealInto(plain, slot)};
    tx[k].msg_hdr.msg_iov = &tx_iov[k];
  };
  auto send_all = [&](uint32_t count) {
    uint32_t sent = 0;
    while (sent < count) {
      const int r = ::sendmmsg(fd, tx.data() + sent, count - sent, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == ECONNREFUSED) return;  // server gone (shutdown)
        Die("generator sendmmsg");
      }
      sent += static_cast<uint32_t>(r);
    }
  };
  auto refill = [&] {
    for (uint32_t i = 0; i < window; ++i) put(i, ex.request, &req_iov);
    send_all(window);
  };
  refill();
  uint64_t replies = 0, batches = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const int n = ::recvmmsg(fd, rx.data(), window, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED) Die("generator recvmmsg");
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 50) == 0 && !stop.load(std::memory_order_relaxed)) {
        c.stalls.fetch_add(1, std::memory_order_relaxed);
        refill();
      }
      continue;
    }
    uint32_t q = 0;
    for (int i = 0; i < n; ++i) {
      const size_t len = rx[i].msg_len;
      c.reply_min = std::min(c.reply_min, len);
      c.reply_max = std::max(c.reply_max, len);
      if (!ex.ack.empty()) put(q++, ex.ack, &ack_iov);
      put(q++, ex.request, &req_iov);
    }
    replies += static_cast<uint64_t>(n);
    c.replies.store(replies, std::memory_order_relaxed);
    c.batches.store(++batches, std::memory_order_relaxed);
    send_all(q);
  }
}

}  // namespace scuttle::bench
