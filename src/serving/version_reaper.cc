#include "serving/version_reaper.h"

#include <chrono>

#include "serving/model_version.h"
#include "telemetry/log.h"

namespace hearth::serving {

VersionReaper::VersionReaper(std::function<void(const std::string&, int64_t)> on_unloaded)
    : on_unloaded_(std::move(on_unloaded)), thread_([this] { loop(); }) {}

VersionReaper::~VersionReaper() { stop(); }

void VersionReaper::retire(std::vector<std::shared_ptr<ModelVersion>> versions) {
  if (versions.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& v : versions) retired_.push_back(std::move(v));
}

void VersionReaper::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stopping_) break;
    lock.unlock();
    reap();
    lock.lock();
  }
}

void VersionReaper::reap() {
  std::vector<std::shared_ptr<ModelVersion>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (it->use_count() == 1) {
        done.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& v : done) {
    const std::string name = v->name();
    const int64_t version = v->version();
    v.reset();
    telemetry::log_info("model_version_unloaded", {telemetry::field("model", name), telemetry::field("version", version)});
    on_unloaded_(name, version);
  }
}

void VersionReaper::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::vector<std::shared_ptr<ModelVersion>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(retired_);
  }
  for (auto& v : all) v->stop();
}

}  // namespace hearth::serving
