#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace ppe::cpt {

// The check characters of a CPT, verifiable by anyone (the plugin holds no key):
//   check = first 4 chars of base32(SHA-256("chk|" + version char + digest))
// They reject random and mistyped labels without a look-up; authenticity is
// the keyed digest plus registry membership, checked in the PPE only.
inline constexpr size_t kCptCheckChars = 4;
inline constexpr size_t kCptMinLength = 16;
inline constexpr size_t kCptMaxLength = 32;

// The check of a canonical (lowercase) `version_and_digest`.
std::string CptCheck(absl::string_view version_and_digest);

// True when `label` (either case) has a CPT's length range and alphabet and
// its last kCptCheckChars characters are the check of the rest. Allocates nothing.
bool HasValidCheck(absl::string_view label);

}  // namespace ppe::cpt
