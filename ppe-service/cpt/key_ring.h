#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ppe::cpt {

// The secret HMAC keys by version (0..31). The newest version issues new tags;
// the one before it still verifies, so keys can rotate without breaking URLs.
class KeyRing {
 public:
  static constexpr int kMaxVersions = 32;
  static constexpr size_t kKeyBytes = 32;

  // Reads the key file ("<version> <64 hex chars>" per line, '#' comments), or
  // creates it with one random key and mode 0600 when it does not exist.
  static absl::StatusOr<KeyRing> LoadOrCreate(const std::string& path);
  // For tests: one key at version 0.
  static KeyRing ForTesting(absl::string_view key);

  int current_version() const { return current_; }
  // The key for `version` if it may verify tags (current or previous), else null.
  const std::string* VerifyingKey(int version) const;
  const std::string& CurrentKey() const { return keys_.at(current_); }

 private:
  std::map<int, std::string> keys_;
  int current_ = 0;
};

}  // namespace ppe::cpt
