// Webhook deliveries with retries (see webhooks.h).
#include "rollout/webhooks.h"

#include <algorithm>
#include <chrono>

#include "rollout/http_client.h"
#include "telemetry/log.h"

namespace hearth::rollout {

namespace {
constexpr size_t kMaxQueued = 1000;
}  // namespace

WebhookNotifier::WebhookNotifier() : thread_([this] { loop(); }) {}

WebhookNotifier::~WebhookNotifier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (const Delivery& d : queue_)
    telemetry::log_warn("webhook_dropped", {telemetry::field("url", d.hook.url), telemetry::field("event", d.event),
                                           telemetry::field("reason", "the server stopped")});
}

void WebhookNotifier::notify(const std::vector<WebhookSpec>& hooks, const std::string& event, const std::string& body) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const WebhookSpec& h : hooks) {
    if (!h.events.empty() && std::find(h.events.begin(), h.events.end(), event) == h.events.end()) continue;
    if (queue_.size() >= kMaxQueued) {  // a receiver that does not keep up loses the oldest, not the server's memory
      telemetry::log_warn("webhook_dropped", {telemetry::field("url", queue_.front().hook.url),
                                             telemetry::field("event", queue_.front().event),
                                             telemetry::field("reason", "too many deliveries waiting")});
      queue_.pop_front();
      ++failed_;
    }
    queue_.push_back({h, event, body});
  }
  cv_.notify_all();
}

uint64_t WebhookNotifier::delivered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return delivered_;
}

uint64_t WebhookNotifier::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

void WebhookNotifier::loop() {
  for (;;) {
    Delivery d;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      d = std::move(queue_.front());
      queue_.pop_front();
    }
    deliver(d);
  }
}

void WebhookNotifier::deliver(const Delivery& d) {
  auto target = parse_http_url(d.hook.url);
  Status last = target.ok() ? Status(StatusCode::kInternal, "not tried") : target.status();
  auto backoff = std::chrono::milliseconds(500);
  for (int attempt = 0; target.ok() && attempt <= d.hook.retries; ++attempt) {
    auto answer = http_call("POST", *target, d.body, {{"Content-Type", "application/json"}}, d.hook.timeout_ms);
    last = !answer.ok() ? answer.status()
           : answer->status / 100 == 2 ? ok_status()
                                       : Status(StatusCode::kUnavailable, str_cat("HTTP ", answer->status));
    if (last.ok()) break;
    std::unique_lock<std::mutex> lock(mu_);
    if (attempt < d.hook.retries && cv_.wait_for(lock, backoff, [&] { return stopping_; })) break;
    backoff *= 2;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (last.ok()) {
    ++delivered_;
    telemetry::log_info("webhook_delivered", {telemetry::field("url", d.hook.url), telemetry::field("event", d.event)});
  } else {
    ++failed_;
    telemetry::log_warn("webhook_failed", {telemetry::field("url", d.hook.url), telemetry::field("event", d.event),
                                          telemetry::field("error", last.message())});
  }
}

}  // namespace hearth::rollout
