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
// [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__". Label values may be any bytes
// (escaped here).
//
// A family may be declared again with the same type and help to add more series (one pass
// per engine shard, say): the output keeps one HELP/TYPE per family, families in the order
// first declared, each family's series in the order written. SetSeriesLabel puts a label
// (e.g. shard="1") first on every series of the families declared after it:
//
//   for (s : shards) { w.SetSeriesLabel("shard", s); w.Family("x_total", ...); w.Sample(..); }
//   w.ClearSeriesLabel();
#ifndef SCUTTLE_API_METRICS_H_
#define SCUTTLE_API_METRICS_H_

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "node/node_histogram.h"

namespace scuttle {

enum class MetricType { kCounter, kGauge, kHistogram, kSummary };

struct MetricLabel {
  std::string_view name;
  std::string_view value;
};

class MetricsWriter {
 public:
  // Starts (or, declared before with the same type and help, continues) a family; its
  // series carry the series label set now, if any.
  void Family(std::string_view name, MetricType type, std::string_view help);
  // A label written first on every series of the families declared from now on.
  void SetSeriesLabel(std::string_view name, std::string_view value);
  void ClearSeriesLabel();
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

  // The exposition text so far.
  std::string text() const;
  std::string Take() { return text(); }

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

  struct Block {
    std::string name;
    MetricType type;
    std::string help;
    std::string text;  // HELP, TYPE, then the series
  };
  std::vector<Block> blocks_;                         // in first-declaration order
  std::map<std::string, size_t, std::less<>> index_;  // family name -> blocks_ index
  Block* current_ = nullptr;
  bool has_label_ = false;  // the label of the current family's series
  std::string label_name_, label_value_;
  bool next_has_label_ = false;  // set by SetSeriesLabel, taken by Family
  std::string next_label_name_, next_label_value_;
};

}  // namespace scuttle

#endif  // SCUTTLE_API_METRICS_H_
