// Node: seed resolution (host:port strings, re-resolved on a background thread).
#include "node/node.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/node_state.h"
#include "engine/rng.h"
#include "io/clock.h"
#include "node/keyring_file.h"
#include "io/socket.h"
#include "spdlog/spdlog.h"
#include "wire/absl_compat.h"
#include "node/node_runtime.h"

namespace scuttle {

// ---- Seed resolution ----------------------------------------------------------------------

absl::Status ParseHostPort(std::string_view text, std::string* host, uint16_t* port) {
  std::string_view h, p;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("'", AV(text), "' is not [ipv6]:port"));
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", AV(text), "' is not host:port"));
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", AV(text), "': write IPv6 addresses as [addr]:port"));
    }
  }
  uint32_t v = 0;
  if (h.empty() || !absl::SimpleAtoi(AV(p), &v) || v == 0 || v > 65535 ||
      p.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", AV(text), "' is not host:port (port 1..65535)"));
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(v);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Endpoint>> ResolveHostPort(std::string_view text, int family) {
  std::string host;
  uint16_t port = 0;
  if (absl::Status s = ParseHostPort(text, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = family == 4 ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("resolve '", AV(text), "': ", gai_strerror(rc)));
  }
  std::vector<Endpoint> out;
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Endpoint ep = io::FromSockaddr(ai->ai_addr, ai->ai_addrlen);
    if (!ep.valid()) continue;
    ep.port = port;
    if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
  }
  ::freeaddrinfo(res);
  if (out.empty()) {
    return absl::UnavailableError(absl::StrCat("resolve '", AV(text), "': no usable address"));
  }
  return out;
}

std::vector<Endpoint> node_internal::ResolveSeeds(const std::vector<std::string>& seeds,
                                                 int family, const Endpoint& self_a,
                                                 const Endpoint& self_b, uint64_t* failures) {
  std::vector<Endpoint> out;
  for (const std::string& seed : seeds) {
    auto eps = ResolveHostPort(seed, family);
    if (!eps.ok()) {
      ++*failures;
      spdlog::warn("node: seed {}: {}", seed, SV(eps.status().message()));
      continue;
    }
    for (const Endpoint& ep : *eps) {
      if (ep == self_a || ep == self_b) continue;
      if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
    }
  }
  return out;
}

void Node::StartResolver(std::vector<std::string> seeds, absl::Duration interval) {
  if (seeds.empty()) return;
  resolver_ = std::make_unique<Resolver>();
  Resolver* r = resolver_.get();
  const int family = bound_.family;
  const Endpoint a = advertise_, b = bound_;
  const auto period = absl::ToChronoMilliseconds(interval);
  r->thread = std::thread([this, r, seeds = std::move(seeds), family, a, b, period] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(r->mu);
        if (r->cv.wait_for(lock, period, [r] { return r->stop; })) return;
      }
      uint64_t failures = 0;
      std::vector<Endpoint> eps = node_internal::ResolveSeeds(seeds, family, a, b, &failures);
      absl::Status s;
      for (size_t shard = 0; shard < loops_.size() && s.ok(); ++shard) {
        Runtime* rt = rts_[shard].get();
        std::vector<Endpoint> shifted = node_internal::ShiftPorts(eps, shard);
        s = loops_[shard]->Post([rt, shard, eps = std::move(shifted), failures]() mutable {
          if (shard == 0) {
            ++rt->counters().seed_resolutions;
            rt->counters().seed_resolve_failures += failures;
          }
          // Keep the last good list when every seed failed to resolve this time.
          if (!eps.empty()) rt->engine().SetSeeds(std::move(eps));
        });
      }
      if (!s.ok()) spdlog::debug("node: seed update not posted: {}", SV(s.message()));
    }
  });
}

void Node::StopResolver() {
  if (resolver_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(resolver_->mu);
    resolver_->stop = true;
  }
  resolver_->cv.notify_all();
  if (resolver_->thread.joinable()) resolver_->thread.join();
  resolver_.reset();
}

}  // namespace scuttle
