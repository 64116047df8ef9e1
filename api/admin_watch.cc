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

json EventJson(const WatchEvent& e) {
  json j;
  j["seq"] = e.seq;
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

void AppendSse(std::string& out, const char* event, const json& data, const uint64_t* id) {
  if (id != nullptr) absl::StrAppend(&out, "id: ", *id, "\n");
  absl::StrAppend(&out, "event: ", event, "\ndata: ", Dump(data), "\n\n");
}

std::string OverflowDetail(uint64_t seq) {
  return absl::StrCat("this watcher fell behind or resumed from a sequence no longer kept; "
                      "events up to ", seq, " are skipped: resync from a snapshot (GET /v1/kv "
                      "or ?snapshot=1) and resume with since=", seq);
}

// One /v1/watch stream: its cursor and what is left to send of its snapshot.
struct WatchStream {
  WatchFilter filter;
  uint64_t after = 0;
  bool started = false;
  std::vector<KvEntry> snapshot;
  size_t snapshot_sent = 0;
  bool snapshot_pending = false;
  int64_t last_write_us = 0;
};

bool ParseSeq(const std::string& text, uint64_t* seq) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
         absl::SimpleAtoi(AV(text), seq);
}

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
    std::optional<uint64_t> since;
    if (const std::string* v = Find(q, "since"); v != nullptr) {
      uint64_t seq;
      if (!ParseSeq(*v, &seq)) {
        return Error(res, 400, absl::StrCat("since='", *v, "': want a sequence number"));
      }
      since = seq;
    } else if (req.has_header("Last-Event-ID")) {
      const std::string v = req.get_header_value("Last-Event-ID");
      uint64_t seq;
      if (!ParseSeq(v, &seq)) {
        return Error(res, 400, absl::StrCat("Last-Event-ID '", v, "': want a sequence number"));
      }
      since = seq;
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
      st->after = snapshot->seq;
    } else {
      st->after = since.value_or(node->event_log()->last_seq());
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
    std::shared_ptr<EventLog> log = node->event_log();
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st, log, opt](size_t /*offset*/, httplib::DataSink& sink) -> bool {
          std::string out;
          if (!st->started) {
            st->started = true;
            // Makes the headers and a first chunk go out at once: the client knows the
            // stream is live (and from which sequence) before anything changes.
            absl::StrAppend(&out, ": scuttle watch from seq ", st->after, "\n\n");
          }
          if (st->snapshot_pending) {
            const size_t end = std::min(st->snapshot.size(), st->snapshot_sent + 256);
            for (; st->snapshot_sent < end; ++st->snapshot_sent) {
              AppendSse(out, "snapshot", EntryJson(st->snapshot[st->snapshot_sent]), nullptr);
            }
            if (st->snapshot_sent == st->snapshot.size()) {
              AppendSse(out, "snapshot_end",
                        json{{"seq", st->after}, {"entries", st->snapshot.size()}}, &st->after);
              st->snapshot_pending = false;
              st->snapshot.clear();
              st->snapshot.shrink_to_fit();
            }
          } else if (stopping_ || log->closed()) {
            if (!out.empty() && !sink.write(out.data(), out.size())) return false;
            sink.done();
            return true;
          } else {
            EventLog::Batch b = log->Read(st->after, st->filter, opt.watch_buffer_events, 1024);
            st->after = b.next_after;
            if (b.overflow) {
              ++watch_overflows_;
              AppendSse(out, "overflow",
                        json{{"event", "overflow"}, {"seq", b.next_after},
                             {"detail", OverflowDetail(b.next_after)}},
                        &b.next_after);
            }
            for (const auto& e : b.events) AppendSse(out, e->name(), EventJson(*e), &e->seq);
            watch_events_sent_ += b.events.size();
          }
          const int64_t now = io::MonotonicNowUs();
          if (out.empty()) {
            if (log->Wait(st->after, 250'000)) return true;  // more to read: next call
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
