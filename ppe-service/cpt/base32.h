#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace ppe::cpt {

// Lowercase RFC 4648 base32 alphabet, no padding (DNS-label safe, case-insensitive).
inline constexpr absl::string_view kBase32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

// Encodes `bytes` and returns the first `chars` characters (chars <= 8*len/5).
std::string Base32Encode(absl::string_view bytes, size_t chars);

// Value 0..31 of a base32 character in either case, or -1.
int Base32Value(char c);

}  // namespace ppe::cpt
