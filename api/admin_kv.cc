// AdminServer: the key routes, GET /v1/kv (scan) and GET/PUT/DELETE /v1/kv/{key}.
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
#include "nlohmann/json.hpp"
#include "wire/absl_compat.h"

namespace scuttle {

using namespace admin_internal;  // the JSON/HTTP helpers every route file shares

void AdminServer::RouteKv() {
  RecordingServer& s = Routes(*server_);
  Node* node = node_;
  const AdminOptions opt = options_;
  s.Get("/v1/kv", [node, opt](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"prefix", "node"})) return;
    auto entries = node->Scan(Param(q, "prefix"), Param(q, "node"));
    if (!entries.ok()) return Error(res, entries.status());
    json arr = json::array();
    const size_t n = std::min(entries->size(), opt.max_scan_entries);
    for (size_t i = 0; i < n; ++i) arr.push_back(EntryJson((*entries)[i]));
    json body{{"entries", std::move(arr)}};
    if (n < entries->size()) body["truncated"] = true;
    Reply(res, 200, body);
  });

  auto check_key = [opt](const std::string& key, Response& res) {
    if (key.size() > opt.max_key_bytes) {
      Error(res, 413, absl::StrCat("key is ", key.size(), " bytes; the limit is ",
                                   opt.max_key_bytes));
      return false;
    }
    return true;
  };

  s.Get(kKeyPath, [node, check_key](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"node"})) return;
    const std::string key = req.matches[1];
    if (!check_key(key, res)) return;
    auto e = node->Get(key, Param(q, "node"));
    if (!e.ok()) return Error(res, e.status());
    Reply(res, 200, EntryJson(*e));
  });

  s.Put(kKeyPath, [node, check_key, opt](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"ttl"})) return;
    const std::string key = req.matches[1];
    if (!check_key(key, res)) return;
    if (req.body.size() > opt.max_value_bytes) {
      return Error(res, 413, absl::StrCat("value is ", req.body.size(), " bytes; the limit is ",
                                          opt.max_value_bytes,
                                          " (an entry travels whole in one UDP datagram; "
                                          "README \"Value size\" has the ways around it)"));
    }
    if (key.size() + req.body.size() + AdminOptions::kWriteOverheadBytes > opt.max_packet_bytes) {
      return Error(res, 413, absl::StrCat("key+value of ", key.size() + req.body.size(),
                                          " bytes cannot fit one packet (max_packet_bytes=",
                                          opt.max_packet_bytes,
                                          "; README \"Value size\" has the ways around it)"));
    }
    absl::StatusOr<Version> v;
    if (const std::string* ttl_param = Find(q, "ttl"); ttl_param != nullptr) {
      absl::Duration ttl;
      const std::string& text = *ttl_param;
      if (!absl::ParseDuration(AV(text), &ttl) || ttl <= absl::ZeroDuration() ||
          ttl == absl::InfiniteDuration()) {
        return Error(res, 400,
                     absl::StrCat("bad ttl '", text, "': want a positive duration like 30s"));
      }
      v = node->SetWithTtl(key, req.body, ttl);
    } else {
      v = node->Set(key, req.body);
    }
    if (!v.ok()) return Error(res, v.status());
    json j;
    PutBytes(j, "key", key);
    j["version"] = *v;
    Reply(res, 200, j);
  });

  s.Delete(kKeyPath, [node, check_key](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    const std::string key = req.matches[1];
    if (!check_key(key, res)) return;
    auto v = node->Delete(key);
    if (!v.ok()) return Error(res, v.status());
    json j;
    PutBytes(j, "key", key);
    j["version"] = *v;
    Reply(res, 200, j);
  });
}

}  // namespace scuttle
