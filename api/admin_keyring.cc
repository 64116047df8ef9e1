// AdminServer: GET and POST /v1/keyring (gossip encryption keys).
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

namespace {

json KeyringJson(const KeyringInfo& k) {
  json keys = json::array();
  for (const KeyringInfo::KeyUse& u : k.keys) {
    keys.push_back(json{{"fingerprint", u.fingerprint},
                        {"primary", u.primary},
                        {"members_primary", u.members_primary}});
  }
  return json{{"keys", std::move(keys)},
              {"members", k.members},
              {"members_other", k.members_other},
              {"cipher", k.cipher},
              {"verify_incoming", k.verify_incoming},
              {"verify_outgoing", k.verify_outgoing},
              {"file", k.file}};
}

}  // namespace

void AdminServer::RouteKeyring() {
  Node* node = node_;
  Routes(*server_).Get("/v1/keyring", [node](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    absl::StatusOr<KeyringInfo> k = node->Keyring();
    if (!k.ok()) return Error(res, k.status());
    Reply(res, 200, KeyringJson(*k));
  });
  Routes(*server_).Post("/v1/keyring", [node](const Request& req, Response& res) {
    const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("op") || !body["op"].is_string() ||
        !body.contains("key") || !body["key"].is_string()) {
      return Error(res, 400, "the body must be {\"op\": \"install\"|\"use\"|\"remove\", "
                             "\"key\": base64 key or fingerprint}");
    }
    const std::string op = body["op"];
    KeyringOp k;
    if (op == "install") {
      k = KeyringOp::kInstall;
    } else if (op == "use") {
      k = KeyringOp::kUse;
    } else if (op == "remove") {
      k = KeyringOp::kRemove;
    } else {
      return Error(res, 400, absl::StrCat("op '", op, "': want install, use or remove"));
    }
    absl::StatusOr<KeyringInfo> info = node->UpdateKeyring(k, body["key"].get<std::string>());
    if (!info.ok()) return Error(res, info.status());
    Reply(res, 200, KeyringJson(*info));
  });
}

}  // namespace scuttle
