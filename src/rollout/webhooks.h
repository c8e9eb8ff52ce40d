// Webhooks: each release event (started, gate, step, check, paused, resumed,
// promoted, rolled_back, aborted) POSTed as JSON to the URLs a release names,
// from a background thread so that a slow receiver never holds a release up.
// A delivery that fails (no connection, a timeout, a status other than 2xx) is
// retried with doubling backoff (0.5 s, 1 s, 2 s, ...) up to the hook's
// `retries`; every outcome is logged (webhook_delivered / webhook_failed). Each
// attempt has the hook's timeout for the whole exchange; at most 1000 deliveries
// wait, and beyond that the oldest is dropped (logged).
// Plain http:// only (the URL is checked when the release is parsed).
// Thread safety: notify() from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "rollout/release_spec.h"

namespace hearth::rollout {

class WebhookNotifier {
 public:
  WebhookNotifier();
  ~WebhookNotifier();  // stops; deliveries still queued are dropped (and logged)
  WebhookNotifier(const WebhookNotifier&) = delete;
  WebhookNotifier& operator=(const WebhookNotifier&) = delete;

  // Queues `body` for every hook subscribed to `event`.
  void notify(const std::vector<WebhookSpec>& hooks, const std::string& event, const std::string& body);
  uint64_t delivered() const;
  uint64_t failed() const;

 private:
  struct Delivery {
    WebhookSpec hook;
    std::string event, body;
  };
  void loop();
  void deliver(const Delivery& d);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Delivery> queue_;
  bool stopping_ = false;
  uint64_t delivered_ = 0, failed_ = 0;
  std::thread thread_;
};

}  // namespace hearth::rollout
