// Engine shards (issue #18, docs/shards.md): the membership a shard other than 0 takes
// from shard 0 instead of deciding it.
#include "engine/engine.h"

namespace scuttle {

void Engine::ApplyMembership(std::span<const MemberRecord> records) {
  const TimeUs remember_us = 10 * config_.membership.dead_node_grace_us;
  for (const MemberRecord& r : records) {
    member_view_.Apply(r, cluster_, membership_, last_now_us_, events_, remember_us,
                       config_.limits.max_nodes);
  }
  summary_dirty_ = true;  // a forgotten node leaves the summary's node order
}

}  // namespace scuttle
