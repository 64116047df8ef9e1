// AdminServer: GET /v1/watch, key and member events as server-sent events.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "api/admin_http.h"
#include "api/admin_server.h"
#include "httplib.h"
#include "io/clock.h"
#include "nlohmann/json.hpp"
#include "wire/absl_compat.h"

namespace scuttle {

using namespace admin_internal;  // the JSON/HTTP helpers every route file shares

namespace {

// ---- Watch (server-sent events) -------------------------------------------------------------

json EventJson(const WatchEvent& e, bool sharded) {
  json j;
  j["seq"] = e.seq;
  if (sharded) j["shard"] = e.shard;
  j["event"] = e.name();
  j["node"] = e.node;
  j["generation"] = e.generation;
  if (e.kind == WatchEvent::Kind::kKey) {
    PutBytes(j, "key", e.key);
    if (e.key_event == KeyEvent::kSet) PutBytes(j, "value", e.value);
  }
  j["version"] = e.version;
  return j;
}

void AppendSse(std::string& out, const char* event, const json& data, const std::string* id) {
  if (id != nullptr) absl::StrAppend(&out, "id: ", *id, "\n");
  absl::StrAppend(&out, "event: ", event, "\ndata: ", Dump(data), "\n\n");
}

std::string OverflowDetail(const std::string& token) {
  return absl::StrCat("this watcher fell behind or resumed from a sequence no longer kept; "
                      "events up to ", token, " are skipped: resync from a snapshot (GET /v1/kv "
                      "or ?snapshot=1) and resume with since=", token);
}

// A resume token: with one shard the sequence number ("123", unchanged); with N shards
// every shard's position, "s0:123,s1:456" (docs/shards.md), since each shard's log counts
// its own events.
std::string Token(const std::vector<uint64_t>& after) {
  if (after.size() == 1) return absl::StrCat(after[0]);
  std::string out;
  for (size_t s = 0; s < after.size(); ++s) {
    absl::StrAppend(&out, s == 0 ? "" : ",", "s", s, ":", after[s]);
  }
  return out;
}

bool ParseSeq(std::string_view text, uint64_t* seq) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
         absl::SimpleAtoi(AV(text), seq);
}

// Parses a token for a node of `shards` shards. A token of another shard count is refused
// with a message saying so (the node was restarted with another --shards: its positions
// mean nothing here).
absl::Status ParseToken(const std::string& text, size_t shards, std::vector<uint64_t>* out) {
  out->clear();
  if (text.find(':') == std::string::npos) {
    uint64_t seq;
    if (!ParseSeq(text, &seq)) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': want a sequence number"));
    }
    if (shards != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "' is a position for a node with one engine shard; this node runs ",
          shards, " (want s0:SEQ,...,s", shards - 1, ":SEQ): resync from a snapshot"));
    }
    out->push_back(seq);
    return absl::OkStatus();
  }
  size_t i = 0;
  for (absl::string_view apart : absl::StrSplit(AV(text), ',')) {
    const std::string_view part = SV(apart);
    const std::string prefix = absl::StrCat("s", i, ":");
    uint64_t seq;
    if (!part.starts_with(prefix) || !ParseSeq(part.substr(prefix.size()), &seq)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': want s0:SEQ,s1:SEQ,... (one position per shard)"));
    }
    out->push_back(seq);
    ++i;
  }
  if (out->size() != shards) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' carries positions of ", out->size(), " engine shard(s); this node runs ",
        shards, ": resync from a snapshot"));
  }
  return absl::OkStatus();
}

// One /v1/watch stream: its cursors (one per shard) and what is left to send of its
// snapshot.
struct WatchStream {
  WatchFilter filter;
  std::vector<uint64_t> after;
  bool started = false;
  std::vector<KvEntry> snapshot;
  size_t snapshot_sent = 0;
  bool snapshot_pending = false;
  int64_t last_write_us = 0;
};

}  // namespace

void AdminServer::RouteWatch() {
  Node* node = node_;
  const AdminOptions opt = options_;
  Routes(*server_).Get("/v1/watch", [this, node, opt](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"prefix", "node", "since", "snapshot"})) return;
    auto st = std::make_shared<WatchStream>();
    st->filter.prefix = Param(q, "prefix");
    st->filter.node = Param(q, "node");
    const size_t shards = node->event_logs().size();
    std::optional<std::vector<uint64_t>> since;
    if (const std::string* v = Find(q, "since"); v != nullptr) {
      std::vector<uint64_t> pos;
      if (absl::Status ps = ParseToken(*v, shards, &pos); !ps.ok()) {
        return Error(res, 400, absl::StrCat("since=", ps.message()));
      }
      since = std::move(pos);
    } else if (req.has_header("Last-Event-ID")) {
      const std::string v = req.get_header_value("Last-Event-ID");
      std::vector<uint64_t> pos;
      if (absl::Status ps = ParseToken(v, shards, &pos); !ps.ok()) {
        return Error(res, 400, absl::StrCat("Last-Event-ID ", ps.message()));
      }
      since = std::move(pos);
    }
    const std::string snap = Param(q, "snapshot");
    if (snap != "" && snap != "0" && snap != "1" && snap != "false" && snap != "true") {
      return Error(res, 400, absl::StrCat("snapshot='", snap, "': want 0 or 1"));
    }
    st->snapshot_pending = snap == "1" || snap == "true";
    if (st->snapshot_pending && since.has_value()) {
      return Error(res, 400, "snapshot=1 starts from a snapshot: it cannot take since");
    }
    if (watchers_.fetch_add(1) >= opt.max_watchers) {
      --watchers_;
      ++watch_rejected_;
      return Error(res, 503, absl::StrCat("too many watchers (the limit is ", opt.max_watchers,
                                          "); retry later"));
    }
    if (st->snapshot_pending) {
      auto snapshot = node->Snapshot(st->filter.prefix, st->filter.node);
      if (!snapshot.ok()) {
        --watchers_;
        return Error(res, snapshot.status());
      }
      if (snapshot->entries.size() > opt.max_scan_entries) {
        snapshot->entries.resize(opt.max_scan_entries);
      }
      st->snapshot = std::move(snapshot->entries);
      st->after = snapshot->seqs;
    } else if (since.has_value()) {
      st->after = std::move(*since);
    } else {
      for (const auto& log : node->event_logs()) st->after.push_back(log->last_seq());
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
    std::vector<std::shared_ptr<EventLog>> logs = node->event_logs();
    std::shared_ptr<Doorbell> bell = node->event_doorbell();
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st, logs, bell, opt](size_t /*offset*/, httplib::DataSink& sink) -> bool {
          const bool sharded = logs.size() > 1;
          std::string out;
          if (!st->started) {
            st->started = true;
            // Makes the headers and a first chunk go out at once: the client knows the
            // stream is live (and from which sequence) before anything changes.
            absl::StrAppend(&out, ": scuttle watch from seq ", Token(st->after), "\n\n");
          }
          const uint64_t rung = bell != nullptr ? bell->rings() : 0;
          if (st->snapshot_pending) {
            const size_t end = std::min(st->snapshot.size(), st->snapshot_sent + 256);
            for (; st->snapshot_sent < end; ++st->snapshot_sent) {
              AppendSse(out, "snapshot", EntryJson(st->snapshot[st->snapshot_sent]), nullptr);
            }
            if (st->snapshot_sent == st->snapshot.size()) {
              const std::string token = Token(st->after);
              json end_json{{"seq", st->after[0]}, {"entries", st->snapshot.size()}};
              if (sharded) end_json["position"] = token;
              AppendSse(out, "snapshot_end", end_json, &token);
              st->snapshot_pending = false;
              st->snapshot.clear();
              st->snapshot.shrink_to_fit();
            }
          } else if (stopping_ || logs[0]->closed()) {
            if (!out.empty() && !sink.write(out.data(), out.size())) return false;
            sink.done();
            return true;
          } else {
            // Every shard's log in turn: one key's events are all in one shard, so each
            // key's order is kept; the id after each event is the whole position vector.
            for (size_t s = 0; s < logs.size(); ++s) {
              EventLog::Batch b =
                  logs[s]->Read(st->after[s], st->filter, opt.watch_buffer_events, 1024);
              if (b.overflow) {
                st->after[s] = b.next_after;
                ++watch_overflows_;
                const std::string token = Token(st->after);
                json j{{"event", "overflow"}, {"seq", b.next_after},
                       {"detail", OverflowDetail(token)}};
                if (sharded) j["shard"] = s;
                AppendSse(out, "overflow", j, &token);
              }
              for (const auto& e : b.events) {
                st->after[s] = e->seq;
                const std::string token = Token(st->after);
                AppendSse(out, e->name(), EventJson(*e, sharded), &token);
              }
              st->after[s] = b.next_after;
              watch_events_sent_ += b.events.size();
            }
          }
          const int64_t now = io::MonotonicNowUs();
          if (out.empty()) {
            bool more;
            if (!sharded) {
              more = logs[0]->Wait(st->after[0], 250'000);
            } else {
              more = false;
              for (size_t s = 0; s < logs.size(); ++s) more = more || logs[s]->last_seq() > st->after[s];
              if (!more) more = bell->Wait(rung, 250'000);
            }
            if (more) return true;  // more to read: next call
            if (now - st->last_write_us < absl::ToInt64Microseconds(opt.watch_keepalive)) {
              return true;
            }
            out = ": keepalive\n\n";
          }
          st->last_write_us = now;
          return sink.write(out.data(), out.size());
        },
        [this](bool /*success*/) { --watchers_; });
  });
}

}  // namespace scuttle
