// ReleaseSpec: what a release of a model version does, as written in a
// release.yaml (or the JSON body of POST /v2/models/{m}/releases): the candidate
// version(s), the champion they are measured against, and the steps: gate,
// shadow, canary weights with the judge's checks, webhooks. docs/RELEASES.md has
// the reference with every field and its default.
//
// parse_release_spec() is strict: an unknown field, a wrong type or a value out of
// range fails with the field's path and (for YAML) its line, e.g.
//   release.yaml:14: canary.steps[2]: 150 is over 100
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace hearth::rollout {

// One check of the judge: absolute and relative thresholds; dry_run evaluates and
// records it but never acts on it.
struct RateCheck {  // error rate
  bool enabled = true;
  double max = 0.05;           // absolute: the candidate's rate above this fails (0 = off)
  double max_increase = 0.01;  // relative: above the champion's rate plus this fails
  bool dry_run = false;
};
struct LatencyCheck {  // a latency quantile
  bool enabled = true;
  double max_ms = 0;       // absolute (0 = off)
  double max_ratio = 1.5;  // relative to the champion's quantile (0 = off)
  double slack_ms = 1.0;   // differences under this never fail (timer noise on fast models)
  bool dry_run = false;
};
struct AgreementCheck {  // shadow: top-1 agreement with the champion
  bool enabled = true;
  double min = 0.98;
  double max_abs_diff = 0;  // largest elementwise difference of any output (0 = off)
  bool dry_run = false;
};
struct AccuracyCheck {  // labelled feedback
  bool enabled = true;
  double max_drop = 0.01;  // below the champion's accuracy minus this fails
  double min = 0;          // absolute (0 = off)
  int64_t min_labels = 100;
  bool dry_run = false;
};

struct GateSpec {
  bool enabled = true;
  double latency_ratio = 1.5;       // candidate median <= ratio x champion's on the gate's runs (0 = off)
  double latency_slack_ms = 1.0;
  int latency_runs = 30;
  int64_t min_free_memory_mb = 256;  // after the candidate loaded (0 = off)
  std::string golden = "golden";     // folder in the version folder: inputs/<input>.npy, labels.npy
  bool require_golden = false;       // fail when the candidate ships no golden set
  double min_accuracy = 0;           // absolute (0 = off)
  double max_accuracy_drop = 0.01;   // against the champion on the same set
  std::string output;                // the output accuracy reads ("" = the first)
};

struct ShadowSpec {
  double share = 0;          // of the champion's requests copied to the candidate(s); 0 = no shadow
  int64_t duration_ms = 60000;  // the shadow step (traffic still all on the champion)
  int max_in_flight = 64;    // copies queued or running; more are dropped (and counted)
};

struct CanarySpec {
  std::vector<double> steps = {1, 5, 25, 50, 100};  // percent of traffic per candidate
  int64_t pause_ms = 30000;  // at least this long at each step
  int max_in_flight = 32;    // a candidate's requests in flight; more go to the champion
  bool retry_on_champion = true;  // a candidate's failed request is answered by the champion
};

struct JudgeSpec {
  int64_t interval_ms = 10000;
  int64_t min_samples = 50;     // per version, per check, before a verdict
  int failures_to_rollback = 2;  // failed checks in the release
  int64_t deadline_ms = 0;      // roll back when not done by then (0 = none)
  double alpha = 0.05;          // significance of the statistical tests
  RateCheck error_rate;
  LatencyCheck latency_p50{true, 0, 1.5, 1.0, false};
  LatencyCheck latency_p99{true, 0, 2.0, 2.0, false};
  AgreementCheck agreement;
  AccuracyCheck accuracy;
};

struct WebhookSpec {
  std::string url;                  // http://host:port/path
  std::vector<std::string> events;  // empty = every event
  int retries = 3;
  int64_t timeout_ms = 2000;
};

struct ReleaseSpec {
  std::string model;
  std::vector<int64_t> candidates;  // `candidate: N` or `candidates: [N, M]` (A/B/n)
  int64_t champion = 0;             // 0 = the version that serves the model now
  GateSpec gate;
  ShadowSpec shadow;
  CanarySpec canary;
  JudgeSpec judge;
  std::vector<WebhookSpec> webhooks;
};

// The events a release reports (webhooks, the audit log, the log).
const std::vector<std::string>& release_event_names();

// Parses YAML or JSON (JSON is YAML). `source` names it in errors ("release.yaml",
// "request body"). `model`, when not empty, is the model of the URL: the text may
// leave it out, or must name the same one.
Result<ReleaseSpec> parse_release_spec(const std::string& text, const std::string& source,
                                       const std::string& model = "");

// The spec as JSON, every field spelled out (stored with the release and shown by
// status); parse_release_spec() reads it back to the same spec.
std::string release_spec_json(const ReleaseSpec& spec);

}  // namespace hearth::rollout
