#include "ppe-service/cpt/cpt_codec.h"

#include <algorithm>
#include "absl/strings/string_view.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/cpt/base32.h"

namespace ppe::cpt {
namespace {

std::string HmacSha256(const std::string& key, absl::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace

CptCodec::CptCodec(KeyRing keys, size_t length)
    : keys_(std::make_shared<const KeyRing>(std::move(keys))),
      length_(std::clamp(length, kMinLength, kMaxLength)) {}

std::string CptCodec::Encode(const Attributes& attributes) const {
  std::shared_ptr<const KeyRing> ring = keys();
  const std::string& key = ring->CurrentKey();
  std::string tag(1, kBase32Alphabet[ring->current_version()]);
  size_t digest_chars = length_ - 1 - kCheckChars;
  tag += Base32Encode(
      HmacSha256(key, absl::StrCat("cpt|", CanonicalEncoding(Canonicalize(attributes)))),
      digest_chars);
  tag += CptCheck(tag);
  return tag;
}

absl::StatusOr<std::string> CptCodec::Parse(absl::string_view label) const {
  if (label.size() != length_) {
    return absl::InvalidArgumentError("label is not a CPT: wrong length");
  }
  std::string tag(label.size(), '\0');
  for (size_t i = 0; i < label.size(); ++i) {
    int v = Base32Value(label[i]);
    if (v < 0) return absl::InvalidArgumentError("label is not a CPT: not base32");
    tag[i] = kBase32Alphabet[v];
  }
  std::shared_ptr<const KeyRing> ring = keys();
  const std::string* key = ring->VerifyingKey(Base32Value(tag[0]));
  if (key == nullptr) return absl::UnauthenticatedError("CPT key version not accepted");
  absl::string_view body(tag.data(), length_ - kCheckChars);
  if (CptCheck(body) != absl::string_view(tag).substr(length_ - kCheckChars)) {
    return absl::UnauthenticatedError("CPT check does not verify");
  }
  return tag;
}

std::string CptCodec::Fingerprint(absl::string_view cpt) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(cpt.data()), cpt.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), 4));
}

}  // namespace ppe::cpt
