// RepositoryPoller: --model-control-mode poll's rescans. A thread calls `poll`
// every `period`; stopping it waits for a rescan in progress to end.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace hearth::serving {

class RepositoryPoller {
 public:
  RepositoryPoller(std::chrono::seconds period, std::function<void()> poll);
  ~RepositoryPoller();  // stop()
  void stop();

 private:
  std::chrono::seconds period_;
  std::function<void()> poll_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace hearth::serving
