// AdminServer: the /ui dashboard.
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
#include "api/ui_assets.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "wire/absl_compat.h"

namespace scuttle {

using namespace admin_internal;  // the JSON/HTTP helpers every route file shares

// The dashboard (api/ui/): static files compiled into the binary, so /ui works offline
// and matches the server it is served by. The page only calls this server's own API.
void AdminServer::RouteUi() {
  RecordingServer& s = Routes(*server_);
  auto serve = [](const UiAsset& a, Response& res) {
    res.status = 200;
    res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.content_type);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  };
  auto index = [serve](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    for (const UiAsset& a : UiAssets()) {
      if (std::string_view(a.name) == "index.html") return serve(a, res);
    }
    Error(res, 500, "the dashboard was not embedded");
  };
  s.Get("/ui", index);
  s.Get("/ui/", index);
  s.Get(R"(/ui/([A-Za-z0-9._-]+))", [serve](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    const std::string name = req.matches[1];
    for (const UiAsset& a : UiAssets()) {
      if (name == a.name) return serve(a, res);
    }
    Error(res, 404, absl::StrCat("no dashboard file '", name, "'"));
  });
}

}  // namespace scuttle
