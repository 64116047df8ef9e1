// MetricsWriter (the exposition formatter) and the test-only exposition checker, each
// against the other and against hand-written good and bad texts.
#include "api/metrics.h"

#include <cmath>
#include <string>

#include "api/exposition_check.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::CheckExposition;
using testing::Exposition;

TEST(MetricsWriterTest, CountersGaugesAndLabels) {
  MetricsWriter w;
  w.Family("scuttle_sent_packets_total", MetricType::kCounter, "Datagrams sent, by type.");
  w.Sample(uint64_t{3}, {{"type", "syn"}});
  w.Sample(uint64_t{18446744073709551615ull}, {{"type", "ack"}});
  w.Family("scuttle_members", MetricType::kGauge, "Members by state.");
  w.Sample(2, {{"state", "alive"}});
  w.Sample(0.25);
  EXPECT_EQ(w.text(),
            "# HELP scuttle_sent_packets_total Datagrams sent, by type.\n"
            "# TYPE scuttle_sent_packets_total counter\n"
            "scuttle_sent_packets_total{type=\"syn\"} 3\n"
            "scuttle_sent_packets_total{type=\"ack\"} 18446744073709551615\n"
            "# HELP scuttle_members Members by state.\n"
            "# TYPE scuttle_members gauge\n"
            "scuttle_members{state=\"alive\"} 2\n"
            "scuttle_members 0.25\n");
  Exposition ex;
  EXPECT_EQ(CheckExposition(w.text(), &ex), "");
  EXPECT_EQ(ex.Get("scuttle_members", {{"state", "alive"}}), 2);
}

TEST(MetricsWriterTest, EscapesLabelValuesAndHelp) {
  MetricsWriter w;
  w.Family("x_info", MetricType::kGauge, "Back\\slash and\nnewline.");
  w.Sample(1, {{"name", "a\"b\\c\nd"}, {"other", ""}});
  EXPECT_EQ(w.text(),
            "# HELP x_info Back\\\\slash and\\nnewline.\n"
            "# TYPE x_info gauge\n"
            "x_info{name=\"a\\\"b\\\\c\\nd\",other=\"\"} 1\n");
  Exposition ex;
  ASSERT_EQ(CheckExposition(w.text(), &ex), "");
  EXPECT_EQ(ex.samples[0].labels.at("name"), "a\"b\\c\nd");  // round trip
}

TEST(MetricsWriterTest, ValuesRoundTrip) {
  EXPECT_EQ(MetricsWriter::FormatValue(0.1), "0.1");
  EXPECT_EQ(MetricsWriter::FormatValue(1e-05), "1e-05");
  EXPECT_EQ(MetricsWriter::FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(MetricsWriter::FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(MetricsWriter::FormatValue(NAN), "NaN");
  EXPECT_EQ(std::stod(MetricsWriter::FormatValue(1.0 / 3)), 1.0 / 3);
}

TEST(MetricsWriterTest, HistogramBucketsAreCumulativeWithInf) {
  Histogram h = Histogram::Exponential(0.001, 10, 3);  // 0.001, 0.01, 0.1
  h.Observe(0.0005);
  h.Observe(0.001);  // le is inclusive
  h.Observe(0.05);
  h.Observe(7);
  MetricsWriter w;
  w.Family("scuttle_handshake_duration_seconds", MetricType::kHistogram, "Syn to SynAck.");
  w.Observe(h, {{"peer", "x"}});
  EXPECT_EQ(w.text(),
            "# HELP scuttle_handshake_duration_seconds Syn to SynAck.\n"
            "# TYPE scuttle_handshake_duration_seconds histogram\n"
            "scuttle_handshake_duration_seconds_bucket{peer=\"x\",le=\"0.001\"} 2\n"
            "scuttle_handshake_duration_seconds_bucket{peer=\"x\",le=\"0.01\"} 2\n"
            "scuttle_handshake_duration_seconds_bucket{peer=\"x\",le=\"0.1\"} 3\n"
            "scuttle_handshake_duration_seconds_bucket{peer=\"x\",le=\"+Inf\"} 4\n"
            "scuttle_handshake_duration_seconds_sum{peer=\"x\"} 7.0515\n"
            "scuttle_handshake_duration_seconds_count{peer=\"x\"} 4\n");
  EXPECT_EQ(CheckExposition(w.text(), nullptr), "");
}

TEST(MetricsWriterTest, SummaryWithoutQuantiles) {
  MetricsWriter w;
  w.Family("scuttle_event_loop_iteration_seconds", MetricType::kSummary, "Busy time.");
  w.Summary(1.5, 10);
  EXPECT_EQ(CheckExposition(w.text(), nullptr), "");
  EXPECT_NE(w.text().find("scuttle_event_loop_iteration_seconds_count 10\n"), std::string::npos);
}

TEST(MetricsWriterTest, FamilyDeclaredAgainAppendsToItsBlock) {
  MetricsWriter w;
  for (const char* shard : {"0", "1"}) {
    w.SetSeriesLabel("shard", shard);
    w.Family("a_total", MetricType::kCounter, "A.");
    w.Sample(1, {{"k", "v"}});
    w.ClearSeriesLabel();
    w.Family("b", MetricType::kGauge, "B.");
    w.Sample(2, {{"shard_of", shard}});
  }
  EXPECT_EQ(w.text(),
            "# HELP a_total A.\n"
            "# TYPE a_total counter\n"
            "a_total{shard=\"0\",k=\"v\"} 1\n"
            "a_total{shard=\"1\",k=\"v\"} 1\n"
            "# HELP b B.\n"
            "# TYPE b gauge\n"
            "b{shard_of=\"0\"} 2\n"
            "b{shard_of=\"1\"} 2\n");
  EXPECT_EQ(CheckExposition(w.text(), nullptr), "");
}

TEST(MetricsWriterTest, NameRules) {
  EXPECT_TRUE(MetricsWriter::ValidMetricName("scuttle_a:b_1"));
  EXPECT_FALSE(MetricsWriter::ValidMetricName("1abc"));
  EXPECT_FALSE(MetricsWriter::ValidMetricName("a-b"));
  EXPECT_FALSE(MetricsWriter::ValidMetricName(""));
  EXPECT_TRUE(MetricsWriter::ValidLabelName("type"));
  EXPECT_FALSE(MetricsWriter::ValidLabelName("__name"));
  EXPECT_FALSE(MetricsWriter::ValidLabelName("a:b"));
}

// The checker must reject what Prometheus would.
TEST(ExpositionCheckTest, RejectsInvalidTexts) {
  const char* bad[] = {
      "x 1",                                                      // no final newline
      "x 1\n",                                                    // no TYPE
      "# TYPE x gauge\nx{a=\"1\"} one\n",                         // bad value
      "# TYPE x gauge\n# TYPE x gauge\nx 1\n",                    // TYPE twice
      "# TYPE x gauge\nx{a=1} 1\n",                               // unquoted label
      "# TYPE x gauge\nx{a=\"\\t\"} 1\n",                         // bad escape
      "# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n",                   // duplicate label
      "# TYPE x gauge\nx 1\nx 2\n",                               // duplicate series
      "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"\"} 1\n",  // not contiguous
      "# TYPE x counter\nx -1\n",                                 // negative counter
      "# TYPE 1x gauge\n1x 1\n",                                  // bad name
      "# TYPE x gauge\nx{__a=\"\"} 1\n",                          // reserved label
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\n"
      "h_count 1\n",                                                        // not cumulative
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0\nh_count 1\n",     // no +Inf
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 1\n",  // count != Inf
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",           // no sum
      "# TYPE x gauge\nx 1\n# HELP x late\n",                               // HELP after samples
  };
  for (const char* t : bad) EXPECT_NE(CheckExposition(t, nullptr), "") << t;
  EXPECT_EQ(CheckExposition("# a comment\n# TYPE x untyped\nx{a=\"b\",} 1e3 1700000000\n", nullptr),
            "");
}

}  // namespace
}  // namespace scuttle
