// StoreLock: one holder at a time, released on destruction.
#include "security/file_lock.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace hearth::security {
namespace {

TEST(StoreLock, OneHolderAtATime) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("hearth_lock_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string store = (dir / "auth.json").string();
  {
    Result<StoreLock> first = StoreLock::acquire(store);
    ASSERT_TRUE(first.ok()) << first.status().message();
    struct stat st {};
    ASSERT_EQ(::stat((store + ".lock").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    Result<StoreLock> second = StoreLock::acquire(store, 100);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(second.status().message().find("auth.json.lock"), std::string::npos);
  }
  EXPECT_TRUE(StoreLock::acquire(store, 100).ok()) << "released when the holder goes away";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth::security
