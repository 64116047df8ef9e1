// scuttle_craft: writes one well-formed (or deliberately, semantically broken) scuttle
// datagram to stdout, for the hostile-input integration tests (tests/integration/).
//
//   scuttle_craft --type syn --cluster_id scuttle --name evil --generation 7
//                 --port 9999 --digest_nodes 3 > syn.bin
//
// Flags (all optional):
//   --type syn|synack|ack|bad_cluster|rumor|rumor_ack|welcome_request
//                                       message type (default syn)
//   --cluster_id ID                     cluster id in the packet and header hash
//   --name NAME --generation G          the sender's NodeRef
//   --addr A.B.C.D --port P             the sender's advertised address (default 127.0.0.1:1)
//   --digest_nodes N                    extra digest entries "<digest_prefix><i>" (syn/synack)
//   --digest_prefix P                   (default "fake-")
//   --heartbeat H                       heartbeat of every digest entry (default 1)
//   --part_node NAME --part_entries K   one NodeDelta with K set entries v1..vK (synack/ack/
//                                       rumor/rumor_ack); rumor_ack also carries one feedback
//                                       record for it (or for the sender without a part)
//   --welcome_window W                  welcome_request: the window asked for (default 8; the
//                                       request carries the sender's digest entry)
//   --value_bytes B                     value size of each entry (default 8)
//   --break KIND                        corrupt semantically, after the verifier would pass:
//       bad_name           sender name_len = 0
//       bad_blob_range     first entry's offset past the blob
//       unsorted_entries   two entries with descending versions
//       entry_out_of_range an entry version above the part's max_version
//       bad_entry_status   entry status 7
//       key_too_long       a 2000-byte key
//       leaving            set the sender's "leaving" flag (not a decode error)
//   --seal_key BASE64                   seal the datagram (wire/seal.h) with this key
//   --seal_cipher C --seal_sender S --seal_counter N
//                                       cipher (default auto), nonce sender id and counter
//
//   scuttle_craft --decode < datagram.bin
// reads one datagram from stdin and prints "ok <type> digest=<n> parts=<n> bytes=<n>" or
// "drop <reason> bytes=<n>" (to classify a node's replies).
// Nothing here is a test oracle: the tests decide what the node must count.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "wire/endpoint.h"
#include "wire/packet.h"
#include "wire/seal.h"

namespace {

using scuttle::Endpoint;
using namespace scuttle::wire;

int Usage(const char* msg) {
  std::fprintf(stderr, "scuttle_craft: %s\n", msg);
  return 2;
}

}  // namespace

int Decode() {
  std::vector<uint8_t> buf;
  uint8_t chunk[65536];
  ssize_t n;
  while ((n = ::read(0, chunk, sizeof(chunk))) > 0) buf.insert(buf.end(), chunk, chunk + n);
  DecodedPacket p;
  DropReason r = DropReason::kCount;
  if (!scuttle::wire::Decode(buf, DecodeLimits{}, &p, &r)) {
    std::printf("drop %s bytes=%zu\n", DropReasonName(r), buf.size());
    return 0;
  }
  std::printf("ok %s digest=%zu parts=%zu bytes=%zu\n", MessageTypeName(p.type),
              p.digest.entries.size(), p.num_parts(), buf.size());
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--decode") return Decode();
  std::map<std::string, std::string> f = {
      {"type", "syn"},         {"cluster_id", "scuttle"}, {"name", "craft"},
      {"generation", "1"},     {"addr", "127.0.0.1"},     {"port", "1"},
      {"digest_nodes", "0"},   {"digest_prefix", "fake-"}, {"heartbeat", "1"},
      {"part_node", ""},       {"part_entries", "0"},     {"value_bytes", "8"},
      {"break", ""},           {"seal_key", ""},          {"seal_cipher", "auto"},
      {"seal_sender", "12345"}, {"seal_counter", "1"},     {"welcome_window", "8"},
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) return Usage(("bad argument " + a).c_str());
    a = a.substr(2);
    std::string v;
    if (auto eq = a.find('='); eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      return Usage(("missing value for --" + a).c_str());
    }
    if (!f.count(a)) return Usage(("unknown flag --" + a).c_str());
    f[a] = v;
  }
  const std::string& type_s = f["type"];
  MessageType type;
  if (type_s == "syn") type = MessageType::kSyn;
  else if (type_s == "synack") type = MessageType::kSynAck;
  else if (type_s == "ack") type = MessageType::kAck;
  else if (type_s == "bad_cluster") type = MessageType::kBadCluster;
  else if (type_s == "rumor") type = MessageType::kRumor;
  else if (type_s == "rumor_ack") type = MessageType::kRumorAck;
  else if (type_s == "welcome_request") type = MessageType::kWelcomeRequest;
  else return Usage("--type must be syn|synack|ack|bad_cluster|rumor|rumor_ack|welcome_request");
  const std::string brk = f["break"];

  auto ep = Endpoint::Parse(f["addr"] + ":" + f["port"]);
  if (!ep.ok()) return Usage("bad --addr/--port");

  std::string blob;
  auto put = [&blob](std::string_view s) {
    const uint32_t off = static_cast<uint32_t>(blob.size());
    blob.append(s);
    return off;
  };
  auto ref = [&](std::string_view name, uint64_t gen) {
    NodeRef r{};
    r.generation = gen;
    r.name_off = put(name);
    r.name_len = static_cast<uint8_t>(name.size());
    SetNodeRefEndpoint(*ep, &r);
    return r;
  };

  std::vector<uint8_t> slot(kMaxUdpPayloadBytes + 4096);
  EncodeOptions opts;
  opts.cluster_id = f["cluster_id"];
  opts.max_packet_bytes = kMaxUdpPayloadBytes;
  const uint64_t gen = std::strtoull(f["generation"].c_str(), nullptr, 10);
  opts.sender = ref(f["name"], gen);
  if (brk == "bad_name") opts.sender.name_len = 0;
  if (brk == "leaving") opts.sender.flags |= kNodeLeaving;
  if (type == MessageType::kWelcomeRequest) {
    opts.welcome.session = 1;
    opts.welcome.window = static_cast<uint16_t>(std::atoi(f["welcome_window"].c_str()));
  }
  PacketEncoder enc(slot, opts);

  const int digest_nodes = std::atoi(f["digest_nodes"].c_str());
  const uint64_t hb = std::strtoull(f["heartbeat"].c_str(), nullptr, 10);
  if (type == MessageType::kSyn || type == MessageType::kSynAck ||
      type == MessageType::kWelcomeRequest) {
    auto d = enc.AllocDigest(static_cast<size_t>(digest_nodes) + 1, false);
    if (d.size() != static_cast<size_t>(digest_nodes) + 1) return Usage("digest does not fit");
    d[0] = DigestEntry{};
    d[0].node = opts.sender;
    d[0].heartbeat = hb;
    for (int i = 0; i < digest_nodes; ++i) {
      DigestEntry& e = d[static_cast<size_t>(i) + 1];
      e = DigestEntry{};
      e.node = ref(f["digest_prefix"] + std::to_string(i), gen);
      e.heartbeat = hb;
    }
  }

  const int part_entries = std::atoi(f["part_entries"].c_str());
  const bool delta_type = type == MessageType::kSynAck || type == MessageType::kAck ||
                          type == MessageType::kRumor || type == MessageType::kRumorAck;
  if (!f["part_node"].empty() && delta_type) {
    const size_t vbytes = std::strtoull(f["value_bytes"].c_str(), nullptr, 10);
    const NodeRef node = ref(f["part_node"], gen);
    std::vector<Entry> entries;
    for (int i = 0; i < part_entries; ++i) {
      std::string key = "craft/" + std::to_string(i);
      if (brk == "key_too_long" && i == 0) key.assign(2000, 'k');
      Entry e{};
      e.version = static_cast<uint64_t>(i) + 1;
      e.off = put(key);
      e.key_len = static_cast<uint16_t>(key.size());
      put(std::string(vbytes, 'v'));
      e.value_len = static_cast<uint32_t>(vbytes);
      entries.push_back(e);
    }
    uint64_t max = static_cast<uint64_t>(part_entries);
    if (!entries.empty()) {
      if (brk == "bad_blob_range") entries[0].off = 1u << 30;
      if (brk == "unsorted_entries" && entries.size() >= 2) std::swap(entries[0], entries[1]);
      if (brk == "entry_out_of_range") entries.back().version = max + 100;
      if (brk == "bad_entry_status") entries[0].status = 7;
    }
    bool ok = false;
    auto dst = enc.AddPart(node, 0, 0, max, max, entries.size(), &ok);
    if (!ok) return Usage("part does not fit");
    std::copy(entries.begin(), entries.end(), dst.begin());
  }

  // A RumorAck's feedback: "I knew nothing of this node's rumor up to v<part_entries>".
  RumorFeedback feedback{};
  if (type == MessageType::kRumorAck) {
    const std::string& about = f["part_node"].empty() ? f["name"] : f["part_node"];
    feedback.generation = gen;
    feedback.max_version = static_cast<uint64_t>(std::max(part_entries, 1));
    feedback.name_off = put(about);
    feedback.name_len = static_cast<uint8_t>(about.size());
  }
  auto b = enc.AllocBlob(blob.size());
  if (b.size() != blob.size()) return Usage("blob does not fit");
  if (!blob.empty()) std::memcpy(b.data(), blob.data(), blob.size());
  if (type == MessageType::kRumorAck) {
    auto fb = enc.AllocFeedback(1);
    if (fb.size() != 1) return Usage("feedback does not fit");
    fb[0] = feedback;
  }
  auto pkt = enc.Finish(type);
  if (pkt.empty()) return Usage("encode failed");
  std::vector<uint8_t> sealed;
  if (!f["seal_key"].empty()) {
    auto key = DecodeKey(f["seal_key"]);
    if (!key.ok()) return Usage("bad --seal_key");
    auto cipher = ParseCipher(f["seal_cipher"]);
    if (!cipher.ok()) return Usage("bad --seal_cipher");
    Keyring ring;
    if (!ring.Install(*key).ok()) return Usage("bad --seal_key");
    sealed.assign(pkt.begin(), pkt.end());
    sealed.resize(pkt.size() + kSealTrailerBytes);
    pkt = Seal(sealed, pkt.size(),
               SealParams{&ring.primary(), ResolveCipher(*cipher),
                          std::strtoull(f["seal_sender"].c_str(), nullptr, 10),
                          std::strtoull(f["seal_counter"].c_str(), nullptr, 10)});
  }
  size_t done = 0;
  while (done < pkt.size()) {
    const ssize_t n = ::write(1, pkt.data() + done, pkt.size() - done);
    if (n <= 0) return 1;
    done += static_cast<size_t>(n);
  }
  return 0;
}
