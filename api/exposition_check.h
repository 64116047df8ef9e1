// Test-only: a strict reader of the Prometheus text exposition format 0.0.4, used to check
// MetricsWriter's output and the whole of GET /metrics. Independent of MetricsWriter on
// purpose (a second implementation of the grammar, not a round trip of the first).
//
// Checks: line syntax (HELP/TYPE/comment/sample), metric and label name syntax, label
// value escapes (\\ \" \n only), float values (+Inf/-Inf/NaN), at most one TYPE and one
// HELP per family and before its samples, samples of a family contiguous, no duplicate
// series, counters >= 0, histograms: le ascending per series with +Inf last, cumulative
// buckets non-decreasing, _count == the +Inf bucket, _sum present; summaries: _sum/_count.
//
// Why it stays beside `promtool check metrics` (tests/integration/interfaces_test.py runs
// promtool on a live /metrics): promtool (Prometheus 2.42, Debian 12) accepts
// non-cumulative histogram buckets, a _count that disagrees with the +Inf bucket and
// negative counters, which this checker refuses; the unit tests read metric values through
// Exposition::Get, which needs a parser anyway; and these checks run in every unit-test
// build, where promtool may be absent (the integration case then skips). The syntax checks
// are the parser itself, so shrinking them would save nothing.
#ifndef SCUTTLE_API_EXPOSITION_CHECK_H_
#define SCUTTLE_API_EXPOSITION_CHECK_H_

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scuttle::testing {

struct ExpositionSample {
  std::string name;  // full series name (with _bucket etc.)
  std::string family;
  std::map<std::string, std::string> labels;  // unescaped
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::vector<ExpositionSample> samples;
  // The value of the series `name` with exactly these labels, or NaN when absent.
  double Get(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& s : samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nan("");
  }
};

namespace exposition_internal {

inline bool NameChar(char c, bool first, bool colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return alpha || (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

inline size_t ReadName(std::string_view s, size_t i, bool colon) {
  size_t j = i;
  while (j < s.size() && NameChar(s[j], j == i, colon)) ++j;
  return j;
}

inline bool ParseValue(std::string_view t, double* v) {
  if (t == "+Inf" || t == "Inf") return *v = INFINITY, true;
  if (t == "-Inf") return *v = -INFINITY, true;
  if (t == "NaN") return *v = NAN, true;
  if (t.empty()) return false;
  const std::string str(t);
  char* end = nullptr;
  *v = std::strtod(str.c_str(), &end);
  return end == str.c_str() + str.size() && !std::isnan(*v) && !std::isinf(*v);
}

}  // namespace exposition_internal

// Parses `text`; returns "" when valid, else "line N: problem".
inline std::string CheckExposition(std::string_view text, Exposition* out) {
  using namespace exposition_internal;
  Exposition ex;
  std::set<std::string> helped, finished, series;
  std::string current;  // family of the previous sample
  auto fail = [](size_t line, const std::string& what) {
    return "line " + std::to_string(line) + ": " + what;
  };
  if (!text.empty() && text.back() != '\n') return "the text must end with a newline";
  size_t lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (line.empty()) continue;
    if (line[0] == '#') {
      const bool help = line.starts_with("# HELP ");
      const bool type = line.starts_with("# TYPE ");
      if (!help && !type) continue;  // a comment
      const size_t n0 = 7, n1 = ReadName(line, n0, true);
      if (n1 == n0) return fail(lineno, "bad metric name in " + std::string(line));
      const std::string fam(line.substr(n0, n1 - n0));
      if (finished.count(fam) || current == fam) {
        return fail(lineno, "HELP/TYPE for " + fam + " after its samples");
      }
      if (help) {
        if (n1 < line.size() && line[n1] != ' ') return fail(lineno, "bad HELP line");
        if (!helped.insert(fam).second) return fail(lineno, "second HELP for " + fam);
        const std::string_view h = n1 < line.size() ? line.substr(n1 + 1) : "";
        for (size_t i = 0; i < h.size(); ++i) {
          if (h[i] == '\\' && (i + 1 >= h.size() || (h[i + 1] != '\\' && h[i + 1] != 'n'))) {
            return fail(lineno, "bad escape in HELP");
          }
          if (h[i] == '\\') ++i;
        }
        continue;
      }
      if (n1 >= line.size() || line[n1] != ' ') return fail(lineno, "bad TYPE line");
      const std::string t(line.substr(n1 + 1));
      if (t != "counter" && t != "gauge" && t != "histogram" && t != "summary" && t != "untyped") {
        return fail(lineno, "unknown type '" + t + "'");
      }
      if (!ex.types.emplace(fam, t).second) return fail(lineno, "second TYPE for " + fam);
      continue;
    }
    // A sample: name [{labels}] value [timestamp]
    ExpositionSample s;
    size_t i = ReadName(line, 0, true);
    if (i == 0) return fail(lineno, "bad metric name: " + std::string(line));
    s.name = std::string(line.substr(0, i));
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t l1 = ReadName(line, i, false);
        if (l1 == i) return fail(lineno, "bad label name");
        const std::string lname(line.substr(i, l1 - i));
        if (lname.starts_with("__")) return fail(lineno, "reserved label name " + lname);
        i = l1;
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          return fail(lineno, "want =\" after label " + lname);
        }
        i += 2;
        std::string v;
        for (;;) {
          if (i >= line.size()) return fail(lineno, "unterminated label value");
          const char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) return fail(lineno, "bad escape");
            const char e = line[i++];
            if (e == '\\')
              v += '\\';
            else if (e == '"')
              v += '"';
            else if (e == 'n')
              v += '\n';
            else
              return fail(lineno, std::string("bad escape \\") + e);
          } else {
            v += c;
          }
        }
        if (!s.labels.emplace(lname, v).second) return fail(lineno, "duplicate label " + lname);
        if (i < line.size() && line[i] == ',')
          ++i;
        else if (i >= line.size() || line[i] != '}')
          return fail(lineno, "want , or }");
      }
      if (i >= line.size()) return fail(lineno, "unterminated label set");
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return fail(lineno, "want a space before the value");
    std::string_view rest = line.substr(i + 1);
    const size_t sp = rest.find(' ');
    const std::string_view value = rest.substr(0, sp);
    if (!ParseValue(value, &s.value)) return fail(lineno, "bad value '" + std::string(value) + "'");
    if (sp != std::string_view::npos) {
      const std::string_view ts = rest.substr(sp + 1);
      if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string_view::npos) {
        return fail(lineno, "bad timestamp");
      }
    }
    // Which family?
    auto family_of = [&](const std::string& name) -> std::string {
      if (ex.types.count(name)) return name;
      for (const char* suf : {"_bucket", "_sum", "_count"}) {
        const std::string_view sv(suf);
        if (name.size() > sv.size() && name.ends_with(sv)) {
          const std::string base = name.substr(0, name.size() - sv.size());
          auto it = ex.types.find(base);
          if (it != ex.types.end() &&
              (it->second == "histogram" || (it->second == "summary" && sv != "_bucket"))) {
            return base;
          }
        }
      }
      return "";
    };
    s.family = family_of(s.name);
    if (s.family.empty()) return fail(lineno, "sample " + s.name + " has no TYPE before it");
    if (s.family != current) {
      if (finished.count(s.family))
        return fail(lineno, "samples of " + s.family + " not contiguous");
      if (!current.empty()) finished.insert(current);
      current = s.family;
    }
    std::string key = s.name + "{";
    for (const auto& [k, v] : s.labels) key += k + "=" + v + ",";
    if (!series.insert(key).second) return fail(lineno, "duplicate series " + key + "}");
    const std::string& type = ex.types[s.family];
    if (type == "counter" && !(s.value >= 0)) return fail(lineno, "negative counter " + s.name);
    if (type == "histogram" && s.name.ends_with("_bucket") && !s.labels.count("le")) {
      return fail(lineno, "bucket without le");
    }
    ex.samples.push_back(std::move(s));
  }
  // Histogram consistency, per family and label set (without le).
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
    bool has_sum = false, has_count = false;
    double count = 0;
  };
  std::map<std::string, Series> hist;
  for (const auto& s : ex.samples) {
    const std::string& type = ex.types[s.family];
    if (type != "histogram" && type != "summary") continue;
    auto labels = s.labels;
    double le = 0;
    if (s.name == s.family + "_bucket") {
      if (!ParseValue(labels["le"], &le)) return "histogram " + s.family + ": bad le";
      labels.erase("le");
    }
    std::string key = s.family + "{";
    for (const auto& [k, v] : labels) key += k + "=" + v + ",";
    Series& h = hist[key];
    if (s.name == s.family + "_bucket")
      h.buckets.emplace_back(le, s.value);
    else if (s.name == s.family + "_sum")
      h.has_sum = true;
    else if (s.name == s.family + "_count")
      h.has_count = true, h.count = s.value;
  }
  for (const auto& [key, h] : hist) {
    if (!h.has_sum || !h.has_count) return key + "}: _sum or _count missing";
    const bool is_hist = ex.types[key.substr(0, key.find('{'))] == "histogram";
    if (!is_hist) continue;
    if (h.buckets.empty() || !std::isinf(h.buckets.back().first)) {
      return key + "}: buckets must end with le=\"+Inf\"";
    }
    for (size_t i = 1; i < h.buckets.size(); ++i) {
      if (!(h.buckets[i].first > h.buckets[i - 1].first)) return key + "}: le not ascending";
      if (h.buckets[i].second < h.buckets[i - 1].second) return key + "}: buckets not cumulative";
    }
    if (h.buckets.back().second != h.count) return key + "}: _count != the +Inf bucket";
  }
  if (out != nullptr) *out = std::move(ex);
  return "";
}

}  // namespace scuttle::testing

#endif  // SCUTTLE_API_EXPOSITION_CHECK_H_
