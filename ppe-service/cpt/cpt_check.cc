#include "ppe-service/cpt/cpt_check.h"

#include <openssl/sha.h>

#include "ppe-service/cpt/base32.h"

namespace ppe::cpt {
namespace {

constexpr absl::string_view kPrefix = "chk|";

// SHA-256 of "chk|" + the lowercase of `body`, into `digest`.
void CheckDigest(absl::string_view body, unsigned char* digest) {
  char buf[4 + kCptMaxLength];
  size_t n = 0;
  for (char c : kPrefix) buf[n++] = c;
  for (char c : body) buf[n++] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  SHA256(reinterpret_cast<const unsigned char*>(buf), n, digest);
}

}  // namespace

std::string CptCheck(absl::string_view version_and_digest) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  CheckDigest(version_and_digest.substr(0, kCptMaxLength), digest);
  return Base32Encode(absl::string_view(reinterpret_cast<char*>(digest), sizeof(digest)),
                      kCptCheckChars);
}

bool HasValidCheck(absl::string_view label) {
  if (label.size() < kCptMinLength || label.size() > kCptMaxLength) return false;
  for (char c : label) {
    if (Base32Value(c) < 0) return false;
  }
  absl::string_view body = label.substr(0, label.size() - kCptCheckChars);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  CheckDigest(body, digest);
  // The first kCptCheckChars base32 characters of the digest: 20 bits.
  uint32_t bits = (uint32_t{digest[0]} << 16) | (uint32_t{digest[1]} << 8) | digest[2];
  for (size_t i = 0; i < kCptCheckChars; ++i) {
    int want = static_cast<int>((bits >> (19 - 5 * i)) & 31);
    if (Base32Value(label[label.size() - kCptCheckChars + i]) != want) return false;
  }
  return true;
}

}  // namespace ppe::cpt
