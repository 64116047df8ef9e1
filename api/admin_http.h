// API-internal: the JSON and HTTP helpers the admin route files share, and the
// route-recording server behind GET /v1/debug/routes. Not part of the API's contract.
#ifndef SCUTTLE_API_ADMIN_HTTP_H_
#define SCUTTLE_API_ADMIN_HTTP_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "api/admin_server.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace scuttle::admin_internal {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

// Remote peers name nodes and keys with arbitrary bytes: never let dump() throw on them.
std::string Dump(const json& j);
void Reply(Response& res, int status, const json& body);
// The error reply {"error": CODE, "detail": ...} (README "Admin API").
const char* ErrorCode(int status);
void Error(Response& res, int status, std::string_view detail);
int HttpStatus(const absl::Status& s);
void Error(Response& res, const absl::Status& s);
bool IsUtf8(std::string_view s);
// "key"/"value" when UTF-8, else "key_base64"/"value_base64".
void PutBytes(json& j, const char* field, std::string_view bytes);
json EntryJson(const KvEntry& e);
std::string PercentDecode(std::string_view s);

// Query parameters from the request target only (never a form-urlencoded body).
using Query = std::vector<std::pair<std::string, std::string>>;
Query ParseQuery(const Request& req);
// 400 unless every query parameter is one of `allowed` (typos like ?prefx= are caught).
bool CheckParams(const Query& q, Response& res, std::initializer_list<std::string_view> allowed);
const std::string* Find(const Query& q, std::string_view name);
std::string Param(const Query& q, std::string_view name);

// [\s\S]: keys may hold any byte once URL-decoded, newlines included.
inline constexpr const char* kKeyPath = R"(/v1/kv/([\s\S]+))";

// httplib keeps its handlers private, so the route table GET /v1/debug/routes serves (and
// docs/openapi.yaml is checked against) is recorded here, as routes are registered.
// Every handler goes through these (name hiding, not virtual: call them on this type).
class RecordingServer : public httplib::Server {
 public:
  // What the routes registered next are: "handler", "method_not_allowed" (405 + Allow
  // for a known path) or "error" (a documented route's error case, e.g. an empty key).
  const char* kind = "handler";
  std::vector<AdminRoute> routes;

  template <typename H>
  RecordingServer& Get(const std::string& pattern, H&& h) {
    Record("GET", pattern);
    httplib::Server::Get(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Put(const std::string& pattern, H&& h) {
    Record("PUT", pattern);
    httplib::Server::Put(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Post(const std::string& pattern, H&& h) {
    Record("POST", pattern);
    httplib::Server::Post(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Patch(const std::string& pattern, H&& h) {
    Record("PATCH", pattern);
    httplib::Server::Patch(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Delete(const std::string& pattern, H&& h) {
    Record("DELETE", pattern);
    httplib::Server::Delete(pattern, std::forward<H>(h));
    return *this;
  }

 private:
  void Record(const char* method, const std::string& pattern) {
    routes.push_back(AdminRoute{method, pattern, kind});
  }
};

inline RecordingServer& Routes(httplib::Server& s) { return static_cast<RecordingServer&>(s); }

}  // namespace scuttle::admin_internal

#endif  // SCUTTLE_API_ADMIN_HTTP_H_
