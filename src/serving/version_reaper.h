// VersionReaper: where retired model versions wait until nobody holds them. A
// version that leaves (unload, a new version under the policy, a deleted file) is
// retired: new requests no longer find it, but requests that already hold it still
// run. A thread checks every 50 ms for retired versions only the reaper still holds
// and destroys them (which drains their queue and joins their workers), then tells
// the owner through `on_unloaded`.
// Thread safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hearth::serving {

class ModelVersion;

class VersionReaper {
 public:
  // `on_unloaded(name, version)` runs on the reaper's thread after a version is destroyed.
  explicit VersionReaper(std::function<void(const std::string&, int64_t)> on_unloaded);
  ~VersionReaper();  // stop()

  void retire(std::vector<std::shared_ptr<ModelVersion>> versions);
  // Stops the thread and stops (drains) every retired version at once, held or not.
  void stop();

 private:
  void loop();
  void reap();

  std::function<void(const std::string&, int64_t)> on_unloaded_;
  std::mutex mu_;
  std::vector<std::shared_ptr<ModelVersion>> retired_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace hearth::serving
