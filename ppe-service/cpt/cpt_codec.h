#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/cpt/attributes.h"
#include "ppe-service/cpt/cpt_check.h"
#include "ppe-service/cpt/key_ring.h"

namespace ppe::cpt {

// Client Profile Tag: <version char><digest><check>, lowercase base32.
//   digest = first D chars of base32(HMAC-SHA-256(key[v], "cpt|" + canonical attributes))
//   check  = first 4 chars of base32(SHA-256("chk|" + version char + digest)), unkeyed
// The check (cpt_check.h) lets the plugin reject a random label without the key
// or a look-up; authenticity is the keyed digest: a tag whose check verifies
// still has to be in the registry to be served.
class CptCodec {
 public:
  static constexpr size_t kMinLength = 16;
  static constexpr size_t kMaxLength = 32;
  static constexpr size_t kDefaultLength = 26;
  static constexpr size_t kCheckChars = kCptCheckChars;

  CptCodec(KeyRing keys, size_t length);
  CptCodec(const CptCodec& other) : keys_(other.keys()), length_(other.length_) {}
  CptCodec& operator=(const CptCodec& other) {
    if (this != &other) {
      SetKeys(other.keys());
      length_ = other.length_;
    }
    return *this;
  }

  // Replaces the key ring (a rotation read from the key file), for every
  // later Encode and Parse; calls in progress finish with the old ring.
  void SetKeys(KeyRing keys) { SetKeys(std::make_shared<const KeyRing>(std::move(keys))); }
  int current_version() const { return keys()->current_version(); }

  // Attributes (canonicalised here) -> tag under the current key.
  std::string Encode(const Attributes& attributes) const;

  // Validates a DNS label: length, alphabet (either case), key version and check.
  // Returns the canonical (lowercase) tag. INVALID_ARGUMENT for a malformed
  // label, UNAUTHENTICATED for a bad check or a retired key.
  absl::StatusOr<std::string> Parse(absl::string_view label) const;

  size_t length() const { return length_; }

  // Short, non-reversible name of a tag for logs and metadata ("3f9a1c02").
  static std::string Fingerprint(absl::string_view cpt);

 private:
  std::shared_ptr<const KeyRing> keys() const {
    absl::MutexLock lock(&mu_);
    return keys_;
  }
  void SetKeys(std::shared_ptr<const KeyRing> keys) {
    absl::MutexLock lock(&mu_);
    keys_ = std::move(keys);
  }

  mutable absl::Mutex mu_;
  std::shared_ptr<const KeyRing> keys_ ABSL_GUARDED_BY(mu_);
  size_t length_;
};

}  // namespace ppe::cpt
