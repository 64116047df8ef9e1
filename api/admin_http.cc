#include "api/admin_http.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle::admin_internal {

// Remote peers name nodes and keys with arbitrary bytes: never let dump() throw on them.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void Reply(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

const char* ErrorCode(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 401: return "unauthorized";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "too_large";
    case 414: return "too_large";
    case 503: return "unavailable";
    default: return status < 500 ? "bad_request" : "internal";
  }
}

void Error(Response& res, int status, std::string_view detail) {
  Reply(res, status, json{{"error", ErrorCode(status)}, {"detail", detail}});
}

int HttpStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 413;  // e.g. max_keys_per_node
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return 503;
    default: return 500;
  }
}

void Error(Response& res, const absl::Status& s) { Error(res, HttpStatus(s), SV(s.message())); }

bool IsUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;  // continuation bytes
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Sets `field` when the bytes are valid UTF-8, else `field`_base64 (standard base64).
void PutBytes(json& j, const char* field, std::string_view bytes) {
  if (IsUtf8(bytes)) {
    j[field] = bytes;
  } else {
    j[std::string(field) + "_base64"] = absl::Base64Escape(AV(bytes));
  }
}

json EntryJson(const KvEntry& e) {
  json j;
  j["node"] = e.node;
  PutBytes(j, "key", e.key);
  PutBytes(j, "value", e.value);
  j["version"] = e.version;
  return j;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

// httplib also merges a form-urlencoded body into req.params, and `curl --data-binary`
// labels every PUT body that way: a value must never be read as parameters.
Query ParseQuery(const Request& req) {
  Query q;
  const size_t qm = req.target.find('?');
  if (qm == std::string::npos) return q;
  std::string_view rest = std::string_view(req.target).substr(qm + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    q.emplace_back(PercentDecode(part.substr(0, eq)),
                   eq == std::string_view::npos ? std::string() : PercentDecode(part.substr(eq + 1)));
  }
  return q;
}

// 400 unless every query parameter is one of `allowed` (typos like ?prefx= are caught).
bool CheckParams(const Query& q, Response& res, std::initializer_list<std::string_view> allowed) {
  for (const auto& [name, value] : q) {
    bool ok = false;
    for (std::string_view a : allowed) ok = ok || name == a;
    if (!ok) {
      Error(res, 400, absl::StrCat("unknown query parameter '", name, "'"));
      return false;
    }
  }
  return true;
}

const std::string* Find(const Query& q, std::string_view name) {
  for (const auto& [k, v] : q) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string Param(const Query& q, std::string_view name) {
  const std::string* v = Find(q, name);
  return v != nullptr ? *v : std::string();
}

}  // namespace scuttle::admin_internal
