#include "serving/repository_poller.h"

namespace hearth::serving {

RepositoryPoller::RepositoryPoller(std::chrono::seconds period, std::function<void()> poll)
    : period_(period), poll_(std::move(poll)), thread_([this] {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stopping_) {
          if (cv_.wait_for(lock, period_, [this] { return stopping_; })) break;
          lock.unlock();
          poll_();
          lock.lock();
        }
      }) {}

RepositoryPoller::~RepositoryPoller() { stop(); }

void RepositoryPoller::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace hearth::serving
