// libFuzzer target: CptCodec::Parse on arbitrary labels, for each tag length.
// A label either fails (INVALID_ARGUMENT / UNAUTHENTICATED) or yields the
// canonical lowercase tag, which parses to itself in either case.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "ppe-service/cpt/base32.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using ppe::cpt::CptCodec;
using ppe::cpt::KeyRing;

const std::vector<CptCodec>& Codecs() {
  static auto* codecs = new std::vector<CptCodec>{
      CptCodec(KeyRing::ForTesting(std::string(32, 'k')), CptCodec::kMinLength),
      CptCodec(KeyRing::ForTesting(std::string(32, 'k')), CptCodec::kDefaultLength),
      CptCodec(KeyRing::ForTesting(std::string(32, 'k')), CptCodec::kMaxLength)};
  return *codecs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view label(reinterpret_cast<const char*>(data), size);
  std::string fingerprint = CptCodec::Fingerprint(label);
  PPE_FUZZ_CHECK(fingerprint.size() == 8);
  for (const CptCodec& codec : Codecs()) {
    absl::StatusOr<std::string> tag = codec.Parse(label);
    if (!tag.ok()) {
      absl::StatusCode code = tag.status().code();
      PPE_FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
                     code == absl::StatusCode::kUnauthenticated);
      continue;
    }
    PPE_FUZZ_CHECK(tag->size() == codec.length());
    for (char c : *tag) {
      PPE_FUZZ_CHECK(ppe::cpt::kBase32Alphabet.find(c) != absl::string_view::npos);
    }
    PPE_FUZZ_CHECK(absl::EqualsIgnoreCase(*tag, label));
    absl::StatusOr<std::string> again = codec.Parse(absl::AsciiStrToUpper(*tag));
    PPE_FUZZ_CHECK(again.ok() && *again == *tag);
  }
  return 0;
}
