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
  if (auto it = index_.find(name); it != index_.end()) {
    current_ = &blocks_[it->second];
    assert(current_->type == type && current_->help == help &&
           "metric family declared again with another type or help");
  } else {
    index_.emplace(std::string(name), blocks_.size());
    Block b{std::string(name), type, std::string(help), {}};
    b.text += "# HELP ";
    b.text += name;
    b.text += ' ';
    b.text += EscapeHelp(help);
    b.text += "\n# TYPE ";
    b.text += name;
    b.text += ' ';
    b.text += TypeName(type);
    b.text += '\n';
    blocks_.push_back(std::move(b));
    current_ = &blocks_.back();
  }
  has_label_ = next_has_label_;
  label_name_ = next_label_name_;
  label_value_ = next_label_value_;
}

void MetricsWriter::SetSeriesLabel(std::string_view name, std::string_view value) {
  assert(ValidLabelName(name));
  next_has_label_ = true;
  next_label_name_ = std::string(name);
  next_label_value_ = std::string(value);
}

void MetricsWriter::ClearSeriesLabel() { next_has_label_ = false; }

std::string MetricsWriter::text() const {
  size_t n = 0;
  for (const Block& b : blocks_) n += b.text.size();
  std::string out;
  out.reserve(n);
  for (const Block& b : blocks_) out += b.text;
  return out;
}

void MetricsWriter::Series(std::string_view suffix, std::initializer_list<MetricLabel> labels,
                           const MetricLabel* extra, std::string_view value) {
  assert(current_ != nullptr);
  std::string& out = current_->text;
  out += current_->name;
  out += suffix;
  if (has_label_ || labels.size() > 0 || extra != nullptr) {
    out += '{';
    bool first = true;
    auto put = [&](std::string_view name, std::string_view v) {
      assert(ValidLabelName(name));
      if (!first) out += ',';
      first = false;
      out += name;
      out += "=\"";
      out += EscapeLabelValue(v);
      out += '"';
    };
    if (has_label_) put(label_name_, label_value_);
    for (const MetricLabel& l : labels) put(l.name, l.value);
    if (extra != nullptr) put(extra->name, extra->value);
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

void MetricsWriter::SampleText(const std::string& value,
                               std::initializer_list<MetricLabel> labels) {
  assert(current_ != nullptr &&
         (current_->type == MetricType::kCounter || current_->type == MetricType::kGauge));
  Series("", labels, nullptr, value);
}

void MetricsWriter::Observe(const Histogram& h, std::initializer_list<MetricLabel> labels) {
  assert(current_ != nullptr && current_->type == MetricType::kHistogram);
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
  assert(current_ != nullptr && current_->type == MetricType::kSummary);
  Series("_sum", labels, nullptr, FormatValue(sum));
  Series("_count", labels, nullptr, std::to_string(count));
}

}  // namespace scuttle
