#include "api/metrics.h"

#include <cassert>
#include <charconv>
#include <cmath>

namespace scuttle {

namespace {

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kSummary:
      return "summary";
  }
  return "untyped";
}

bool NameChar(char c, bool first, bool colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (alpha || (colon && c == ':')) return true;
  return !first && c >= '0' && c <= '9';
}

// Backslash and newline escaped, and the double quote too in a label value (HELP text
// keeps its quotes), as the exposition format asks.
std::string Escape(std::string_view v, bool quote) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

bool MetricsWriter::ValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!NameChar(name[i], i == 0, /*colon=*/true)) return false;
  }
  return true;
}

bool MetricsWriter::ValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!NameChar(name[i], i == 0, /*colon=*/false)) return false;
  }
  return true;
}

std::string MetricsWriter::EscapeLabelValue(std::string_view v) { return Escape(v, true); }

std::string MetricsWriter::EscapeHelp(std::string_view v) { return Escape(v, false); }

std::string MetricsWriter::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round trip
  assert(ec == std::errc());
  return std::string(buf, end);
}

void MetricsWriter::Family(std::string_view name, MetricType type, std::string_view help) {
  assert(ValidMetricName(name));
  assert(type != MetricType::kCounter || name.ends_with("_total"));
  [[maybe_unused]] const bool inserted = declared_.emplace(name).second;
  assert(inserted && "metric family declared twice");
  family_ = std::string(name);
  type_ = type;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += EscapeHelp(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += TypeName(type);
  out_ += '\n';
}

void MetricsWriter::Series(std::string_view suffix, std::initializer_list<MetricLabel> labels,
                           const MetricLabel* extra, std::string_view value) {
  out_ += family_;
  out_ += suffix;
  if (labels.size() > 0 || extra != nullptr) {
    out_ += '{';
    bool first = true;
    auto put = [&](const MetricLabel& l) {
      assert(ValidLabelName(l.name));
      if (!first) out_ += ',';
      first = false;
      out_ += l.name;
      out_ += "=\"";
      out_ += EscapeLabelValue(l.value);
      out_ += '"';
    };
    for (const MetricLabel& l : labels) put(l);
    if (extra != nullptr) put(*extra);
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

void MetricsWriter::SampleText(const std::string& value,
                               std::initializer_list<MetricLabel> labels) {
  assert(!family_.empty() && (type_ == MetricType::kCounter || type_ == MetricType::kGauge));
  Series("", labels, nullptr, value);
}

void MetricsWriter::Observe(const Histogram& h, std::initializer_list<MetricLabel> labels) {
  assert(type_ == MetricType::kHistogram);
  assert(h.counts.size() == h.bounds.size() + 1);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    const std::string le = i < h.bounds.size() ? FormatValue(h.bounds[i]) : "+Inf";
    const MetricLabel extra{"le", le};
    Series("_bucket", labels, &extra, std::to_string(cumulative));
  }
  Series("_sum", labels, nullptr, FormatValue(h.sum));
  Series("_count", labels, nullptr, std::to_string(h.count));
}

void MetricsWriter::Summary(double sum, uint64_t count, std::initializer_list<MetricLabel> labels) {
  assert(type_ == MetricType::kSummary);
  Series("_sum", labels, nullptr, FormatValue(sum));
  Series("_count", labels, nullptr, std::to_string(count));
}

}  // namespace scuttle
