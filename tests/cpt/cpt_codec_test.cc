#include "ppe-service/cpt/cpt_codec.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "ppe-service/cpt/base32.h"

namespace ppe::cpt {
namespace {

CptCodec TestCodec(size_t length = CptCodec::kDefaultLength) {
  return CptCodec(KeyRing::ForTesting(std::string(32, 'k')), length);
}

Attributes Sample() {
  return Attributes{.region = "eu-west", .device_class = "tv", .service_tier = "premium"};
}

TEST_CASE("same attributes give the same CPT, different ones a different CPT") {
  CptCodec codec = TestCodec();
  std::string a = codec.Encode(Sample());
  CHECK(a == codec.Encode(Sample()));
  Attributes other = Sample();
  other.device_class = "phone";
  CHECK(a != codec.Encode(other));
  CHECK(a.size() == CptCodec::kDefaultLength);
}

TEST_CASE("canonicalisation: case, whitespace and empty fields do not change the CPT") {
  CptCodec codec = TestCodec();
  Attributes messy{.region = "  EU-West ",
                   .device_class = "TV",
                   .service_tier = "Premium",
                   .time_bucket = "",
                   .request_pattern = ""};
  CHECK(codec.Encode(messy) == codec.Encode(Sample()));
}

TEST_CASE("encoded CPTs parse back in any case") {
  for (size_t len : {size_t{16}, size_t{26}, size_t{32}}) {
    CptCodec codec = TestCodec(len);
    std::string tag = codec.Encode(Sample());
    REQUIRE(tag.size() == len);
    for (char c : tag) CHECK(Base32Value(c) >= 0);
    CHECK(tag == absl::AsciiStrToLower(tag));
    auto parsed = codec.Parse(tag);
    REQUIRE(parsed.ok());
    CHECK(*parsed == tag);
    auto upper = codec.Parse(absl::AsciiStrToUpper(tag));
    REQUIRE(upper.ok());
    CHECK(*upper == tag);
  }
}

TEST_CASE("forged and malformed labels are rejected") {
  CptCodec codec = TestCodec();
  std::string tag = codec.Encode(Sample());
  std::string flipped = tag;
  flipped[5] = flipped[5] == 'a' ? 'b' : 'a';
  CHECK(codec.Parse(flipped).status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(codec.Parse(tag.substr(1)).status().code() == absl::StatusCode::kInvalidArgument);
  std::string bad_char = tag;
  bad_char[3] = '1';  // not in the base32 alphabet
  CHECK(codec.Parse(bad_char).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(codec.Parse("").status().code() == absl::StatusCode::kInvalidArgument);
  // The check is keyless (the plugin verifies it): a tag made under another key
  // passes it, but names another digest, so it is in no registry of this key.
  CptCodec other(KeyRing::ForTesting(std::string(32, 'x')), CptCodec::kDefaultLength);
  absl::StatusOr<std::string> foreign = codec.Parse(other.Encode(Sample()));
  REQUIRE(foreign.ok());
  CHECK(*foreign != tag);
}

TEST_CASE("random labels almost never pass the check") {
  CptCodec codec = TestCodec();
  std::srand(42);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string label(1, 'a');
    for (size_t j = 1; j < CptCodec::kDefaultLength; ++j)
      label += kBase32Alphabet[std::rand() % 32];
    if (codec.Parse(label).ok()) ++accepted;
  }
  CHECK(accepted <= 2);  // 20 check bits: expected 0.02
}

TEST_CASE("fingerprints are short, stable and do not contain the tag") {
  std::string tag = TestCodec().Encode(Sample());
  std::string fp = CptCodec::Fingerprint(tag);
  CHECK(fp.size() == 8);
  CHECK(fp == CptCodec::Fingerprint(tag));
  CHECK(tag.find(fp) == std::string::npos);
}

TEST_CASE("key file: created with mode 0600, reloaded, rotation keeps the previous key") {
  char dir[] = "/tmp/ppe-keys-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string path = std::string(dir) + "/keys";
  auto ring = KeyRing::LoadOrCreate(path);
  REQUIRE(ring.ok());
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CptCodec v0(*ring, CptCodec::kDefaultLength);
  std::string old_tag = v0.Encode(Sample());
  CHECK(old_tag[0] == 'a');

  auto again = KeyRing::LoadOrCreate(path);
  REQUIRE(again.ok());
  CHECK(CptCodec(*again, CptCodec::kDefaultLength).Encode(Sample()) == old_tag);

  // Rotate: version 1 issues, version 0 still verifies; version 2 retires version 0.
  { std::ofstream(path, std::ios::app) << "1 " << std::string(64, 'b') << "\n"; }
  auto rotated = KeyRing::LoadOrCreate(path);
  REQUIRE(rotated.ok());
  CptCodec v1(*rotated, CptCodec::kDefaultLength);
  std::string new_tag = v1.Encode(Sample());
  CHECK(new_tag[0] == 'b');
  CHECK(new_tag != old_tag);
  CHECK(v1.Parse(old_tag).ok());
  CHECK(v1.Parse(new_tag).ok());
  { std::ofstream(path, std::ios::app) << "2 " << std::string(64, 'c') << "\n"; }
  auto retired = KeyRing::LoadOrCreate(path);
  REQUIRE(retired.ok());
  CHECK_FALSE(CptCodec(*retired, CptCodec::kDefaultLength).Parse(old_tag).ok());

  chmod(path.c_str(), 0644);
  CHECK(KeyRing::LoadOrCreate(path).status().code() == absl::StatusCode::kFailedPrecondition);
  { std::ofstream(path, std::ios::trunc) << "zz nothex\n"; }
  chmod(path.c_str(), 0600);
  CHECK(KeyRing::LoadOrCreate(path).status().code() == absl::StatusCode::kInvalidArgument);
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace ppe::cpt
