#pragma once

// Helpers shared by the store tests: a temporary directory and a thread-safe
// log of watch responses.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/store/registry_store.h"

namespace ppe::store::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/ppe-store-test-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    char* made = ::mkdtemp(buffer.data());
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Collects what a watch delivers; waits with a timeout.
class WatchLog {
 public:
  WatchCallback Callback() {
    return [this](const WatchResponse& response) {
      absl::MutexLock lock(&mu_);
      responses_.push_back(response);
    };
  }

  // Waits until at least `n` responses arrived; false on timeout.
  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return responses_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  std::vector<WatchResponse> Responses() {
    absl::MutexLock lock(&mu_);
    return responses_;
  }

  size_t Count() {
    absl::MutexLock lock(&mu_);
    return responses_.size();
  }

 private:
  absl::Mutex mu_;
  std::vector<WatchResponse> responses_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::store::testing
