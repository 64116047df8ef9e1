// Events the engine reports to its driver: key changes (local writes, applied deltas,
// TTL expiry) and member changes. Delivered synchronously from within engine calls; a sink
// must not call back into the engine.
#ifndef SCUTTLE_ENGINE_EVENTS_H_
#define SCUTTLE_ENGINE_EVENTS_H_

#include <string_view>

#include "engine/types.h"

namespace scuttle {

class NodeState;

enum class KeyEvent : uint8_t { kSet, kDeleted, kExpired };
enum class MemberEvent : uint8_t { kJoined, kAlive, kSuspect, kDead, kLeft, kForgotten, kRestarted };

const char* KeyEventName(KeyEvent e);
const char* MemberEventName(MemberEvent e);

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnKey(const NodeState& node, KeyEvent event, std::string_view key,
                     std::string_view value, Version version) = 0;
  virtual void OnMember(const NodeState& node, MemberEvent event) = 0;
  // A reset discarded this node's replica before refilling it.
  virtual void OnReset(const NodeState& /*node*/) {}
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_EVENTS_H_
