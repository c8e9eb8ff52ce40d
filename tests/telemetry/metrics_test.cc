// Tests of metric series, the Registry's rules, the text exposition output and
// process metrics.
#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "telemetry/process_metrics.h"

namespace hearth::telemetry {
namespace {

TEST(Metrics, renders_exact_text_format) {
  Registry r;
  auto c = r.counter("hearth_requests_total", "Requests.", {{"model", "m1"}, {"code", "200"}});
  c->add(3);
  r.counter("hearth_requests_total", "other help is ignored", {{"model", "a\"b\\c\nd"}, {"code", "500"}})
      ->add(0.5);
  r.gauge("hearth_queue", "Queue depth.\nSecond \"line\" \\ x")->set(-2.5);
  auto h = r.histogram("hearth_latency_us", "Latency.", {100, 10}, {{"model", "m1"}});
  for (double v : {5.0, 10.0, 50.0, 1000.0}) h->observe(v);

  const std::string expected =
      "# HELP hearth_latency_us Latency.\n"
      "# TYPE hearth_latency_us histogram\n"
      "hearth_latency_us_bucket{model=\"m1\",le=\"10\"} 2\n"
      "hearth_latency_us_bucket{model=\"m1\",le=\"100\"} 3\n"
      "hearth_latency_us_bucket{model=\"m1\",le=\"+Inf\"} 4\n"
      "hearth_latency_us_sum{model=\"m1\"} 1065\n"
      "hearth_latency_us_count{model=\"m1\"} 4\n"
      "# HELP hearth_queue Queue depth.\\nSecond \"line\" \\\\ x\n"
      "# TYPE hearth_queue gauge\n"
      "hearth_queue -2.5\n"
      "# HELP hearth_requests_total Requests.\n"
      "# TYPE hearth_requests_total counter\n"
      "hearth_requests_total{model=\"m1\",code=\"200\"} 3\n"
      "hearth_requests_total{model=\"a\\\"b\\\\c\\nd\",code=\"500\"} 0.5\n";
  EXPECT_EQ(r.render(), expected);
}

TEST(Metrics, empty_registry_renders_nothing) {
  Registry r;
  EXPECT_EQ(r.render(), "");
}

TEST(Metrics, formats_numbers) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(-0.0), "0");
  EXPECT_EQ(format_metric_value(1234567), "1234567");
  EXPECT_EQ(format_metric_value(1e20), "100000000000000000000");
  EXPECT_EQ(format_metric_value(-42), "-42");
  EXPECT_EQ(format_metric_value(0.1), "0.1");
  EXPECT_EQ(format_metric_value(2.5e-7), "2.5e-07");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(format_metric_value(third)), third);  // round trip
}

TEST(Metrics, default_buckets) {
  std::vector<double> lat = latency_buckets_us();
  ASSERT_EQ(lat.size(), 15u);
  EXPECT_EQ(lat.front(), 100);
  EXPECT_EQ(lat.back(), 5000000);
  EXPECT_TRUE(std::is_sorted(lat.begin(), lat.end()));
  EXPECT_EQ(batch_size_buckets(), (std::vector<double>{1, 2, 4, 8, 16, 32, 64, 128, 256}));
}

TEST(Metrics, counter_is_monotonic) {
  Counter c;
  c.add();
  c.add(2.5);
  c.add(-10);
  c.add(std::nan(""));
  EXPECT_EQ(c.value(), 3.5);
  c.set_total(10);
  EXPECT_EQ(c.value(), 10);
  c.set_total(4);
  EXPECT_EQ(c.value(), 10);
}

TEST(Metrics, histogram_buckets_are_cumulative_with_inf) {
  Histogram h({1, 1, std::numeric_limits<double>::infinity(), 0.5, std::nan("")});
  EXPECT_EQ(h.upper_bounds(), (std::vector<double>{0.5, 1}));
  h.observe(0.5);  // le is inclusive
  h.observe(0.7);
  h.observe(1);
  h.observe(7);
  h.observe(std::nan(""));
  Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{1, 3, 5}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(Metrics, concurrent_updates_give_exact_totals) {
  Registry r;
  auto c = r.counter("c_total", "c");
  auto g = r.gauge("g", "g");
  auto h = r.histogram("h", "h", {0.5, 1.5});
  constexpr int kThreads = 8;
  constexpr int kIters = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        c->add();
        g->add(1);
        h->observe(i % 3);  // 0, 1, 2
      }
    });
  }
  std::thread renderer([&] {
    for (int i = 0; i < 20; ++i) r.render();  // renders race with updates safely
  });
  for (auto& t : threads) t.join();
  renderer.join();
  EXPECT_EQ(c->value(), kThreads * kIters);
  EXPECT_EQ(g->value(), kThreads * kIters);
  Histogram::Snapshot s = h->snapshot();
  uint64_t per = kThreads * static_cast<uint64_t>((kIters + 2) / 3);  // zeros
  uint64_t ones = kThreads * static_cast<uint64_t>((kIters + 1) / 3);
  EXPECT_EQ(s.cumulative_counts[0], per);
  EXPECT_EQ(s.cumulative_counts[1], per + ones);
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads) * kIters);
  uint64_t twos = s.count - per - ones;
  EXPECT_EQ(s.sum, static_cast<double>(ones + 2 * twos));
}

TEST(Metrics, concurrent_get_or_create_returns_one_series) {
  Registry r;
  std::vector<std::shared_ptr<Counter>> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&r, &got, t] {
      for (int i = 0; i < 1000; ++i) {
        auto c = r.counter("x_total", "x", {{"model", "m"}});
        c->add();
        got[static_cast<size_t>(t)] = c;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& c : got) EXPECT_EQ(c.get(), got[0].get());
  EXPECT_EQ(got[0]->value(), 8000);
}

TEST(Metrics, same_series_returned_twice) {
  Registry r;
  auto a = r.counter("req_total", "r", {{"model", "m"}, {"version", "1"}});
  auto b = r.counter("req_total", "r", {{"model", "m"}, {"version", "1"}});
  auto reordered = r.counter("req_total", "r", {{"version", "1"}, {"model", "m"}});
  auto other = r.counter("req_total", "r", {{"model", "m"}, {"version", "2"}});
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a.get(), reordered.get());
  EXPECT_NE(a.get(), other.get());
  EXPECT_EQ(r.gauge("g", "g").get(), r.gauge("g", "g").get());
  auto h1 = r.histogram("h", "h", {1, 2});
  auto h2 = r.histogram("h", "h", {5});  // bounds fixed by the first call
  EXPECT_EQ(h1.get(), h2.get());
  auto h3 = r.histogram("h", "h", {5}, {{"model", "m"}});
  EXPECT_EQ(h3->upper_bounds(), (std::vector<double>{1, 2}));
}

TEST(Metrics, type_conflict_returns_detached_object) {
  Registry r;
  auto c = r.counter("thing", "a counter");
  c->add(2);
  auto g = r.gauge("thing", "a gauge");
  ASSERT_NE(g, nullptr);
  g->set(99);  // usable, but not registered
  EXPECT_EQ(g->value(), 99);
  auto h = r.histogram("thing", "h", {1});
  ASSERT_NE(h, nullptr);
  h->observe(1);
  EXPECT_EQ(r.render(), "# HELP thing a counter\n# TYPE thing counter\nthing 2\n");
}

TEST(Metrics, invalid_names_return_detached_objects) {
  Registry r;
  std::vector<std::shared_ptr<Counter>> bad = {
      r.counter("", "x"),
      r.counter("1abc", "x"),
      r.counter("has-dash", "x"),
      r.counter("ok_total", "x", {{"bad-label", "v"}}),
      r.counter("ok_total", "x", {{"__reserved", "v"}}),
      r.counter("ok_total", "x", {{"a", "1"}, {"a", "2"}}),
  };
  for (auto& c : bad) {
    ASSERT_NE(c, nullptr);
    c->add();
  }
  auto h = r.histogram("hist", "x", {1}, {{"le", "5"}});
  ASSERT_NE(h, nullptr);
  h->observe(0);
  EXPECT_EQ(r.render(), "");
  r.counter("ns:ok_total", "x", {{"_a1", "v"}})->add();  // colons and underscores are fine
  EXPECT_EQ(r.render(), "# HELP ns:ok_total x\n# TYPE ns:ok_total counter\nns:ok_total{_a1=\"v\"} 1\n");
}

TEST(Metrics, remove_series_drops_matching_series_of_all_families) {
  Registry r;
  auto c1 = r.counter("req_total", "r", {{"model", "a"}, {"version", "1"}});
  auto c2 = r.counter("req_total", "r", {{"model", "a"}, {"version", "2"}});
  auto h1 = r.histogram("lat", "l", {1}, {{"version", "1"}, {"model", "a"}});
  auto g = r.gauge("up", "u", {{"model", "b"}, {"version", "1"}});
  c1->add(5);
  r.remove_series({{"model", "a"}, {"version", "1"}});
  std::string text = r.render();
  EXPECT_EQ(text.find("req_total{model=\"a\",version=\"1\"}"), std::string::npos) << text;
  EXPECT_EQ(text.find("# TYPE lat"), std::string::npos) << text;     // empty family not rendered
  EXPECT_NE(text.find("req_total{model=\"a\",version=\"2\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("up{model=\"b\",version=\"1\"} 0"), std::string::npos) << text;
  c1->add(1);  // the holder's object stays valid
  h1->observe(0.5);
  EXPECT_EQ(c1->value(), 6);
  auto fresh = r.counter("req_total", "r", {{"model", "a"}, {"version", "1"}});
  EXPECT_NE(fresh.get(), c1.get());
  EXPECT_EQ(fresh->value(), 0);
  r.remove_series({});  // empty match removes nothing
  EXPECT_NE(r.render().find("req_total{model=\"a\",version=\"1\"} 0"), std::string::npos);
}

TEST(Metrics, collectors_run_before_render) {
  Registry r;
  int calls = 0;
  r.add_collector([&r, &calls] { r.gauge("collected", "c")->set(++calls); });
  r.add_collector([] { throw std::runtime_error("boom"); });  // swallowed
  EXPECT_NE(r.render().find("collected 1\n"), std::string::npos);
  EXPECT_NE(r.render().find("collected 2\n"), std::string::npos);
}

// Value of the unlabeled sample `name` in `text`, or NaN.
double sample_value(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return std::nan("");
}

TEST(Metrics, process_metrics_are_plausible) {
  Registry r;
  register_process_metrics(r);
  std::string text = r.render();
  EXPECT_NE(text.find("# TYPE hearth_process_cpu_seconds_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE hearth_process_resident_memory_bytes gauge\n"), std::string::npos);
  double rss = sample_value(text, "hearth_process_resident_memory_bytes");
  double vsz = sample_value(text, "hearth_process_virtual_memory_bytes");
  EXPECT_GT(rss, 1024 * 1024);
  EXPECT_GE(vsz, rss);
  EXPECT_GE(sample_value(text, "hearth_process_cpu_seconds_total"), 0);
  EXPECT_GE(sample_value(text, "hearth_process_threads"), 1);
  EXPECT_GE(sample_value(text, "hearth_process_open_fds"), 3);  // stdin, stdout, stderr
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  double start = sample_value(text, "hearth_process_start_time_seconds");
  EXPECT_LE(start, now + 2);
  EXPECT_GT(start, now - 24 * 3600);

  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); });
  double threads_now = sample_value(r.render(), "hearth_process_threads");
  for (auto& t : threads) t.join();
  EXPECT_GE(threads_now, 4);  // the collector refreshes at every render
}

}  // namespace
}  // namespace hearth::telemetry
