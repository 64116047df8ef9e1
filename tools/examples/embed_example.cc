// Embedding scuttle in a C++ service: two in-process Nodes on loopback, one writes a key,
// the other sees it arrive through a subscription callback, then both leave gracefully.
// Built by CI and run as a ctest (exit 0 = the key replicated within the deadline).
//
//   build/release/tools/examples/embed_example
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "node/node.h"

namespace {

std::unique_ptr<scuttle::Node> StartNode(const std::string& name, std::vector<std::string> seeds) {
  scuttle::NodeOptions o;
  o.engine.node_name = name;
  o.engine.gossip_interval_us = 100 * scuttle::kUsPerMs;
  o.listen = *scuttle::Endpoint::Parse("127.0.0.1:0");  // any free port
  o.seeds = std::move(seeds);
  // kAuto prefers io_uring and falls back to epoll where a seccomp profile blocks it.
  o.io = scuttle::io::IoKind::kAuto;
  auto node = scuttle::Node::Start(std::move(o));
  if (!node.ok()) {
    std::fprintf(stderr, "start %s: %s\n", name.c_str(), node.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*node);
}

}  // namespace

int main() {
  auto a = StartNode("a", {});
  if (a == nullptr) return 1;
  auto b = StartNode("b", {a->gossip_endpoint().ToString()});
  if (b == nullptr) return 1;

  // Callbacks run on b's dispatcher thread: hand the value over to main.
  std::mutex mu;
  std::condition_variable cv;
  std::string got;
  std::unique_ptr<scuttle::Subscription> sub =
      b->Subscribe("greeting/", [&](const scuttle::WatchEvent& e) {
        if (e.kind != scuttle::WatchEvent::Kind::kKey) return;
        std::printf("b saw %s %s/%s = %s (v%llu)\n", e.name(), e.node.c_str(), e.key.c_str(),
                    e.value.c_str(), static_cast<unsigned long long>(e.version));
        std::lock_guard<std::mutex> lock(mu);
        got = e.value;
        cv.notify_all();
      });

  if (auto v = a->Set("greeting/hello", "world"); !v.ok()) {
    std::fprintf(stderr, "set: %s\n", v.status().ToString().c_str());
    return 1;
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return got == "world"; })) {
      std::fprintf(stderr, "the key did not reach b within 10 s\n");
      return 1;
    }
  }
  // Reads go through the loop thread too; `node` names the owner of the key.
  auto entry = b->Get("greeting/hello", "a");
  auto members = b->Members();
  if (!entry.ok() || !members.ok()) return 1;
  for (const scuttle::MemberInfo& m : *members) {
    std::printf("member %s %s%s\n", m.name.c_str(), scuttle::MemberStateName(m.state),
                m.is_self ? " (self)" : "");
  }
  sub.reset();  // unsubscribe before the node goes away (either order is safe)
  if (!b->Stop().ok() || !a->Stop().ok()) return 1;
  std::printf("ok\n");
  return 0;
}
