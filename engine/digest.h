// Digest construction (seed 000): what a Syn, SynAck or Ack tells a peer about every node
// this engine knows, and the compact per-bucket summary that replaces it in steady state
// (DESIGN §2 "digest scale").
#ifndef SCUTTLE_ENGINE_DIGEST_H_
#define SCUTTLE_ENGINE_DIGEST_H_

#include <cstddef>
#include <vector>

#include "engine/cluster.h"
#include "engine/delta_builder.h"
#include "wire/packet.h"

namespace scuttle {

class DigestBuilder {
 public:
  // Plans a digest of every node, or a rotating subset when it does not fit the budget
  // (then marked partial). Self is always included, and so is `peer` when given (a
  // SynAck's digest must tell the initiator what we hold of its own map, or its Ack could
  // not send it). Returns the wire bytes planned.
  size_t Plan(const Cluster& cluster, size_t budget_bytes, const NodeState* peer = nullptr);
  size_t blob_bytes() const { return blob_bytes_; }
  // REQUIRES: Plan() was called and the cluster has not changed since.
  bool Write(wire::PacketEncoder& enc, BlobWriter& blob) const;

 private:
  std::vector<const NodeState*> planned_;
  size_t blob_bytes_ = 0;
  bool partial_ = false;
  size_t cursor_ = 0;  // rotation start for partial digests
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_DIGEST_H_
