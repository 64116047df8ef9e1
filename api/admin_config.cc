// AdminServer: GET and PATCH /v1/config (the live flags).
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
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "api/admin_http.h"
#include "api/admin_server.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "wire/absl_compat.h"

namespace scuttle {

using namespace admin_internal;  // the JSON/HTTP helpers every route file shares

namespace {

// ---- Config -----------------------------------------------------------------------------------

json FlagValue(const ConfigFlag& f) {
  switch (f.type) {
    case ConfigFlag::Type::kInt: {
      int64_t v;
      if (absl::SimpleAtoi(AV(f.value), &v)) return v;
      uint64_t u;
      if (absl::SimpleAtoi(AV(f.value), &u)) return u;
      break;
    }
    case ConfigFlag::Type::kDouble: {
      double v;
      if (absl::SimpleAtod(AV(f.value), &v)) return v;
      break;
    }
    case ConfigFlag::Type::kBool: return f.value == "true";
    case ConfigFlag::Type::kString: break;
  }
  return f.value;
}

json LiveJson(const LiveConfig& c) {
  return json{{"gossip_interval_ms", c.gossip_interval_ms},
              {"fanout", c.fanout},
              {"phi_threshold", c.phi_threshold},
              {"dead_node_grace", absl::FormatDuration(c.dead_node_grace)},
              {"tombstone_grace", absl::FormatDuration(c.tombstone_grace)},
              {"log_level", c.log_level},
              {"rumor_k", c.rumor_k}};
}

bool IsLiveField(std::string_view name) {
  for (const char* f : kLiveConfigFields) {
    if (name == f) return true;
  }
  return false;
}

void FieldError(Response& res, std::string_view field, std::string_view detail) {
  Reply(res, 400, json{{"error", "bad_request"}, {"field", field}, {"detail", detail}});
}

// Reads one PATCH field into the patch; false (with the 400 written) on a wrong type.
bool ReadField(const std::string& name, const json& v, LiveConfigPatch& p, Response& res) {
  auto want = [&](const char* what) {
    FieldError(res, name, absl::StrCat(name, ": want ", what, ", got ", Dump(v)));
    return false;
  };
  if (name == "gossip_interval_ms" || name == "fanout") {
    if (!v.is_number_integer()) return want("an integer");
    (name == "fanout" ? p.fanout : p.gossip_interval_ms) = v.get<int64_t>();
  } else if (name == "rumor_k") {
    if (!v.is_number_integer()) return want("an integer");
    p.rumor_k = v.get<int64_t>();
  } else if (name == "phi_threshold") {
    if (!v.is_number()) return want("a number");
    p.phi_threshold = v.get<double>();
  } else if (name == "dead_node_grace" || name == "tombstone_grace") {
    absl::Duration d;
    if (!v.is_string() || !absl::ParseDuration(AV(v.get_ref<const std::string&>()), &d)) {
      return want("a duration string like \"30s\" or \"2h\"");
    }
    (name == "dead_node_grace" ? p.dead_node_grace : p.tombstone_grace) = d;
  } else if (name == "log_level") {
    if (!v.is_string()) return want("a string");
    p.log_level = v.get<std::string>();
  }
  return true;
}

}  // namespace

void AdminServer::RouteConfig() {
  Node* node = node_;
  const AdminOptions opt = options_;
  Routes(*server_).Get("/v1/config", [node, opt](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    auto live = node->GetLiveConfig();
    if (!live.ok()) return Error(res, live.status());
    json cfg = json::object();
    for (const ConfigFlag& f : opt.flags) {
      cfg[f.name] = json{{"value", FlagValue(f)}, {"live", false}, {"help", f.help}};
    }
    const json current = LiveJson(*live);
    for (auto it = current.begin(); it != current.end(); ++it) {
      const std::string& name = it.key();
      json entry = cfg.contains(name) ? cfg[name] : json{{"help", ""}};
      entry["value"] = it.value();
      entry["live"] = true;
      cfg[name] = std::move(entry);
    }
    Reply(res, 200, json{{"config", std::move(cfg)}});
  });

  Routes(*server_).Patch("/v1/config", [node, opt](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Error(res, 400, "the body must be a JSON object of field: value, e.g. "
                             "{\"fanout\": 4, \"log_level\": \"debug\"}");
    }
    LiveConfigPatch patch;
    std::vector<std::string> changed;
    for (const auto& [name, value] : body.items()) {
      if (!IsLiveField(name)) {
        bool known = false;
        for (const ConfigFlag& f : opt.flags) known = known || f.name == name;
        return FieldError(res, name,
                          known ? absl::StrCat(name, " cannot change at runtime: restart with --",
                                               name)
                                : absl::StrCat("unknown field '", name, "'; live fields: ",
                                               absl::StrJoin(kLiveConfigFields, ", ")));
      }
      if (!ReadField(name, value, patch, res)) return;
      changed.push_back(name);
    }
    if (absl::Status s = ValidateLiveConfigPatch(patch); !s.ok()) {
      const std::string msg(SV(s.message()));
      return FieldError(res, msg.substr(0, msg.find(':')), msg);
    }
    auto live = node->UpdateLiveConfig(patch);
    if (!live.ok()) return Error(res, live.status());
    Reply(res, 200, json{{"changed", changed}, {"config", LiveJson(*live)}});
  });
}

}  // namespace scuttle
