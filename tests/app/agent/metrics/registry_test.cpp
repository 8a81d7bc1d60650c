#include "app/agent/metrics/registry.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace sextant::agent {
namespace {

TEST(MetricsRegistry, RendersCountersGaugesAndHistogramsThatParseBack) {
  Registry reg;
  auto& requests =
      reg.AddCounter("sextant_requests_total", "Requests by status.", {"deployment", "code"});
  auto& depth = reg.AddGauge("sextant_queue_depth", "Waiting requests.", {"deployment"});
  auto& ttft = reg.AddHistogram("sextant_ttft_seconds", "Time to first token.", {"deployment"},
                                {0.01, 0.1, 1});
  requests.WithLabels({"chat", "200"}).Inc();
  requests.WithLabels({"chat", "200"}).Inc(2);
  requests.WithLabels({"chat", "429"}).Inc();
  depth.WithLabels({"chat"}).Set(3);
  ttft.WithLabels({"chat"}).Observe(0.05);
  ttft.WithLabels({"chat"}).Observe(0.5);
  ttft.WithLabels({"chat"}).Observe(5);

  const std::string text = reg.RenderText();
  auto parsed = ParseText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
  EXPECT_EQ(parsed->types.at("sextant_requests_total"), "counter");
  EXPECT_EQ(parsed->types.at("sextant_queue_depth"), "gauge");
  EXPECT_EQ(parsed->types.at("sextant_ttft_seconds"), "histogram");
  EXPECT_EQ(parsed->helps.at("sextant_ttft_seconds"), "Time to first token.");
  EXPECT_EQ(parsed->Sum("sextant_requests_total", {{"code", "200"}}), 3);
  EXPECT_EQ(parsed->Sum("sextant_requests_total", {{"code", "429"}}), 1);
  EXPECT_EQ(parsed->Sum("sextant_queue_depth"), 3);
  EXPECT_EQ(parsed->Sum("sextant_ttft_seconds_bucket", {{"le", "0.01"}}), 0);
  EXPECT_EQ(parsed->Sum("sextant_ttft_seconds_bucket", {{"le", "0.1"}}), 1);
  EXPECT_EQ(parsed->Sum("sextant_ttft_seconds_bucket", {{"le", "1"}}), 2);
  EXPECT_EQ(parsed->Sum("sextant_ttft_seconds_bucket", {{"le", "+Inf"}}), 3);
  EXPECT_EQ(parsed->Sum("sextant_ttft_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(parsed->Sum("sextant_ttft_seconds_sum"), 5.55);
  EXPECT_NE(text.find("sextant_requests_total{deployment=\"chat\",code=\"200\"} 3\n"),
            std::string::npos)
      << text;
}

TEST(MetricsRegistry, EscapesLabelValuesSoAnyValueRoundTrips) {
  Registry reg;
  auto& g = reg.AddGauge("x", "help with \\ and\nnewline", {"name"});
  const std::string nasty = "a\"b\\c\nd}e,f=\"g";
  g.WithLabels({nasty}).Set(1.5);
  auto parsed = ParseText(reg.RenderText());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->samples.size(), 1u);
  EXPECT_EQ(parsed->samples[0].Label("name"), nasty);
  EXPECT_EQ(parsed->samples[0].value, 1.5);
}

TEST(MetricsRegistry, SameNameReturnsSameFamilyAndConflictsAreReported) {
  Registry reg;
  auto& a = reg.AddCounter("c_total", "c", {"x"});
  auto& b = reg.AddCounter("c_total", "c", {"x"});
  EXPECT_EQ(&a, &b);
  EXPECT_TRUE(reg.registration_errors().empty());
  auto& conflict = reg.AddGauge("c_total", "c", {"x"});
  conflict.WithLabels({"1"}).Set(7);  // usable, never rendered
  auto& bad = reg.AddCounter("9bad", "c", {});
  bad.WithLabels({}).Inc();
  EXPECT_EQ(reg.registration_errors().size(), 2u);
  auto parsed = ParseText(reg.RenderText());
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->Has("9bad"));
  EXPECT_EQ(parsed->types.at("c_total"), "counter");
}

TEST(MetricsRegistry, CountersIgnoreNegativeIncrementsAndRemoveStopsRendering) {
  Registry reg;
  auto& fam = reg.AddCounter("n_total", "n", {"d"});
  Counter& c = fam.WithLabels({"a"});
  c.Inc(2);
  c.Inc(-5);
  EXPECT_EQ(c.value(), 2);
  fam.Remove({"a"});
  c.Inc();  // the old reference stays valid
  auto parsed = ParseText(reg.RenderText());
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->Has("n_total"));
  EXPECT_EQ(fam.WithLabels({"a"}).value(), 0);
}

TEST(MetricsRegistry, CollectHooksRunAtScrapeTime) {
  Registry reg;
  auto& g = reg.AddGauge("sampled", "s", {});
  int calls = 0;
  reg.AddCollectHook([&] { g.WithLabels({}).Set(++calls * 10); });
  auto first = ParseText(reg.RenderText());
  auto second = ParseText(reg.RenderText());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->Sum("sampled"), 10);
  EXPECT_EQ(second->Sum("sampled"), 20);
}

TEST(MetricsRegistry, ConcurrentIncrementsAreNotLost) {
  Registry reg;
  auto& fam = reg.AddCounter("hits_total", "h", {"t"});
  auto& hist = reg.AddHistogram("lat_seconds", "l", {}, LatencyBucketsSeconds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        fam.WithLabels({"x"}).Inc();
        hist.WithLabels({}).Observe(0.002);
      }
    });
  }
  for (auto& th : threads) th.join();
  auto parsed = ParseText(reg.RenderText());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Sum("hits_total"), 40000);
  EXPECT_EQ(parsed->Sum("lat_seconds_count"), 40000);
  EXPECT_EQ(parsed->Sum("lat_seconds_bucket", {{"le", "0.001"}}), 0);
  EXPECT_EQ(parsed->Sum("lat_seconds_bucket", {{"le", "0.0025"}}), 40000);
}

TEST(MetricsTextParser, RejectsMalformedLinesNamingTheLine) {
  struct Case {
    const char* text;
    const char* expect;
  };
  const Case cases[] = {
      {"# TYPE a counter\na 1\nb 2\n", "line 3"},
      {"# TYPE a counter\na{x=\"1} 1\n", "line 2"},
      {"# TYPE a counter\na{x=1} 1\n", "expected =\""},
      {"# TYPE a counter\na one\n", "invalid value"},
      {"# TYPE a widget\n", "unknown type"},
      {"# TYPE a counter\na -1\n", "negative"},
      {"# TYPE h histogram\nh_bucket 1\n", "without an le"},
      {"# TYPE a gauge\na 1", "newline"},
      {"# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", "repeated"},
      {"# TYPE a gauge\na  1\n", "invalid value"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseText(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_NE(parsed.status().message().find(c.expect), std::string::npos)
        << c.text << " -> " << parsed.status().ToString();
  }
  auto ok = ParseText("# some comment\n# TYPE a gauge\na{} 1 1700000000000\na +Inf\n\n");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(MetricsFormat, ValuesUseShortestExactText) {
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-2.5), "-2.5");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
}

}  // namespace
}  // namespace sextant::agent
