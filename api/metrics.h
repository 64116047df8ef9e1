// Prometheus text exposition format 0.0.4: a small writer for counters, gauges,
// histograms and (sum/count only) summaries, with label and HELP escaping.
//
//   MetricsWriter w;
//   w.Family("scuttle_sent_packets_total", MetricType::kCounter, "Datagrams sent.");
//   w.Sample(3, {{"type", "syn"}});
//   std::string text = w.Take();
//
// Contract (checked with assertions; the names are ours, never remote input): family
// names match [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in _total, label names match
// [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__", each family is declared once and its
// samples follow its declaration. Label values may be any bytes (escaped here).
#ifndef SCUTTLE_API_METRICS_H_
#define SCUTTLE_API_METRICS_H_

#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>

#include "node/node_histogram.h"

namespace scuttle {

enum class MetricType { kCounter, kGauge, kHistogram, kSummary };

struct MetricLabel {
  std::string_view name;
  std::string_view value;
};

class MetricsWriter {
 public:
  // Writes the HELP and TYPE lines. REQUIRES: `name` not declared before.
  void Family(std::string_view name, MetricType type, std::string_view help);
  // One sample of the current counter or gauge family. Integers are written exactly.
  template <typename T>
  requires std::is_arithmetic_v<T>
  void Sample(T value, std::initializer_list<MetricLabel> labels = {}) {
    if constexpr (std::is_integral_v<T>) {
      SampleText(std::to_string(value), labels);
    } else {
      SampleText(FormatValue(static_cast<double>(value)), labels);
    }
  }
  // A counter (or gauge) family with its one unlabelled sample: the common case.
  template <typename T>
  void Counter(std::string_view name, std::string_view help, T value) {
    Family(name, MetricType::kCounter, help);
    Sample(value);
  }
  template <typename T>
  void Gauge(std::string_view name, std::string_view help, T value) {
    Family(name, MetricType::kGauge, help);
    Sample(value);
  }
  // The _bucket (cumulative, le="+Inf" last), _sum and _count series of a histogram family.
  void Observe(const Histogram& h, std::initializer_list<MetricLabel> labels = {});
  // The _sum and _count series of a summary family (no quantiles).
  void Summary(double sum, uint64_t count, std::initializer_list<MetricLabel> labels = {});

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

  // Escapes a label value: backslash, double quote and newline.
  static std::string EscapeLabelValue(std::string_view v);
  // Escapes HELP text: backslash and newline.
  static std::string EscapeHelp(std::string_view v);
  // Shortest text that reads back as the same double; +Inf, -Inf, NaN spelled as Prometheus.
  static std::string FormatValue(double v);
  static bool ValidMetricName(std::string_view name);
  static bool ValidLabelName(std::string_view name);

 private:
  void SampleText(const std::string& value, std::initializer_list<MetricLabel> labels);
  void Series(std::string_view suffix, std::initializer_list<MetricLabel> labels,
              const MetricLabel* extra, std::string_view value);

  std::string out_;
  std::string family_;
  MetricType type_ = MetricType::kGauge;
  std::set<std::string, std::less<>> declared_;
};

}  // namespace scuttle

#endif  // SCUTTLE_API_METRICS_H_
