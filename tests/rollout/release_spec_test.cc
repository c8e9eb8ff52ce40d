// release.yaml: every field read, defaults, and a clear error naming the field and
// line for each kind of mistake.
#include "rollout/release_spec.h"

#include <gtest/gtest.h>

namespace hearth::rollout {
namespace {

const char* kFull = R"(model: mlp
candidate: 2
champion: 1
gate:
  latency_ratio: 2
  latency_runs: 10
  min_free_memory_mb: 64
  require_golden: true
  max_accuracy_drop: 0.02
shadow:
  share: 0.5
  duration: 30s
  max_in_flight: 8
canary:
  steps: [1, 5, 25, 50, 100]
  pause: 2m
  max_in_flight: 4
  retry_on_champion: false
judge:
  interval: 250ms
  min_samples: 200
  failures_to_rollback: 3
  deadline: 1h
  alpha: 0.01
  checks:
    error_rate: {max: 0.1, max_increase: 0.02}
    latency_p99: {max_ratio: 1.2, dry_run: true}
    agreement: {min: 0.95}
    accuracy: {max_drop: 0.005, min_labels: 500}
webhooks:
  - url: http://127.0.0.1:9000/hook
    events: [promoted, rolled_back]
    retries: 5
)";

std::string error_of(const std::string& text, const std::string& model = "") {
  auto s = parse_release_spec(text, "release.yaml", model);
  return s.ok() ? "" : s.status().message();
}

TEST(ReleaseSpec, reads_every_field) {
  auto s = parse_release_spec(kFull, "release.yaml");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->model, "mlp");
  EXPECT_EQ(s->candidates, std::vector<int64_t>{2});
  EXPECT_EQ(s->champion, 1);
  EXPECT_EQ(s->gate.latency_ratio, 2);
  EXPECT_EQ(s->gate.latency_runs, 10);
  EXPECT_TRUE(s->gate.require_golden);
  EXPECT_EQ(s->shadow.share, 0.5);
  EXPECT_EQ(s->shadow.duration_ms, 30000);
  EXPECT_EQ(s->canary.steps, (std::vector<double>{1, 5, 25, 50, 100}));
  EXPECT_EQ(s->canary.pause_ms, 120000);
  EXPECT_FALSE(s->canary.retry_on_champion);
  EXPECT_EQ(s->judge.interval_ms, 250);
  EXPECT_EQ(s->judge.deadline_ms, 3600000);
  EXPECT_EQ(s->judge.failures_to_rollback, 3);
  EXPECT_EQ(s->judge.error_rate.max, 0.1);
  EXPECT_TRUE(s->judge.latency_p99.dry_run);
  EXPECT_EQ(s->judge.latency_p99.max_ratio, 1.2);
  EXPECT_EQ(s->judge.accuracy.min_labels, 500);
  ASSERT_EQ(s->webhooks.size(), 1u);
  EXPECT_EQ(s->webhooks[0].events, (std::vector<std::string>{"promoted", "rolled_back"}));
  EXPECT_EQ(s->webhooks[0].retries, 5);
}

TEST(ReleaseSpec, defaults_and_json_round_trip) {
  auto s = parse_release_spec("model: m\ncandidates: [3, 4]\ncanary: {steps: [10, 40]}\n", "x");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->candidates, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(s->champion, 0);
  EXPECT_EQ(s->judge.interval_ms, 10000);
  EXPECT_TRUE(s->gate.enabled);
  auto full = parse_release_spec(kFull, "release.yaml");
  ASSERT_TRUE(full.ok());
  auto again = parse_release_spec(release_spec_json(*full), "stored");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(release_spec_json(*again), release_spec_json(*full));
  EXPECT_EQ(again->canary.pause_ms, 120000);
  EXPECT_EQ(again->judge.latency_p99.dry_run, true);
}

TEST(ReleaseSpec, json_bodies_and_the_model_of_the_url) {
  auto s = parse_release_spec(R"({"candidate": 2, "canary": {"steps": [50]}})", "the request body", "mlp");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->model, "mlp");
  EXPECT_NE(error_of("model: other\ncandidate: 2\n", "mlp").find("not the model of the URL"), std::string::npos);
}

TEST(ReleaseSpec, mistakes_name_the_field_and_line) {
  EXPECT_EQ(error_of("model: m\ncandidate: 2\njudge:\n  intervall: 5s\n"),
            "release.yaml:4: judge.intervall: unknown field (judge has interval, min_samples, failures_to_rollback, "
            "deadline, alpha, checks)");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\ncanary:\n  steps: [1, 5, 150]\n"),
            "release.yaml:4: canary.steps[2]: 150 is over 100");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\ncanary:\n  steps: [50, 10]\n"),
            "release.yaml:1: canary.steps[1]: 10 is less than the step before (50)");
  EXPECT_EQ(error_of("model: m\ncandidates: [2, 3]\ncanary:\n  steps: [60]\n"),
            "release.yaml:1: canary.steps[0]: 60% for each of 2 candidates is over 100%");
  EXPECT_EQ(error_of("model: m\n"), "release.yaml:1: candidate: is required (or candidates: [N, M] for A/B/n)");
  EXPECT_EQ(error_of("candidate: 2\n"), "release.yaml:1: model: is required");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\ncandidates: [3]\n"), "release.yaml:3: candidates: give either candidate or candidates");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\nchampion: 2\n"), "release.yaml:1: champion: 2 is also a candidate");
  EXPECT_EQ(error_of("model: m\ncandidate: -1\n"), "release.yaml:2: candidate: -1 is under 1");
  EXPECT_EQ(error_of("model: m\ncandidate: two\n"), "release.yaml:2: candidate: 'two' is not a whole number");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\nshadow: {share: 1.5}\n"), "release.yaml:3: shadow.share: 1.5 is over 1");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\njudge: {interval: soon}\n"),
            "release.yaml:3: judge.interval: 'soon' is not a duration (250ms, 30s, 5m, 2h)");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\njudge: {interval: 10ms}\n"), "release.yaml:3: judge.interval: 10ms is under 100ms");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\njudge: {interval: 0}\n"), "release.yaml:3: judge.interval: 0 is under 100ms");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\njudge: {deadline: 0}\ncanary: {pause: 0}\n"), "") << "0: none";
  EXPECT_EQ(error_of("model: m\ncandidate: 2\nwebhooks:\n  - url: https://x/hook\n"),
            "release.yaml:4: webhooks[0].url: 'https://x/hook' must be an http:// URL (https webhooks are not supported yet)");
  EXPECT_NE(error_of("model: m\ncandidate: 2\nwebhooks:\n  - {url: 'http://x', events: [exploded]}\n").find("unknown event 'exploded'"),
            std::string::npos);
  EXPECT_EQ(error_of("model: m\ncandidate: 2\ncandidate: 3\n").find("release.yaml:"), 0u);
  EXPECT_NE(error_of("model: [m\n").find("not valid YAML or JSON"), std::string::npos);
  EXPECT_EQ(error_of("- 1\n- 2\n"), "release.yaml:1: the release: must be a map of fields");
  EXPECT_EQ(error_of("model: m\ncandidate: 2\ngate: {golden: ../x}\n"),
            "release.yaml:1: gate.golden: must be a folder name inside the version folder");
}

}  // namespace
}  // namespace hearth::rollout
