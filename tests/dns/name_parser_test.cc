#include "ppe-service/dns/name_parser.h"

#include <catch2/catch.hpp>

namespace ppe::dns {
namespace {

using Kind = ParsedName::Kind;

TEST_CASE("names relative to the zone") {
  NameParser p("cdn.example.test.", {"video", "db"});
  CHECK(p.Parse("cdn.example.test.").kind == Kind::kApex);
  CHECK(p.Parse("CDN.Example.TEST").kind == Kind::kApex);

  ParsedName untagged = p.Parse("Video.cdn.example.test.");
  CHECK(untagged.kind == Kind::kUntagged);
  CHECK(untagged.service == "video");

  ParsedName tagged = p.Parse("AbCdEf.DB.cdn.example.test.");
  CHECK(tagged.kind == Kind::kTagged);
  CHECK(tagged.service == "db");
  CHECK(tagged.cpt_label == "abcdef");

  CHECK(p.Parse("mail.cdn.example.test.").kind == Kind::kOther);       // unknown service
  CHECK(p.Parse("x.mail.cdn.example.test.").kind == Kind::kOther);     // under an unknown service
  CHECK(p.Parse("a.b.video.cdn.example.test.").kind == Kind::kOther);  // too deep
  CHECK(p.Parse("example.test.").kind == Kind::kOutside);
  CHECK(p.Parse("xcdn.example.test.").kind == Kind::kOutside);  // not a label boundary
  CHECK(p.Parse("video.cdn.example.org.").kind == Kind::kOutside);
  CHECK(p.Parse("").kind == Kind::kOutside);
}

TEST_CASE("canonical names") {
  CHECK(CanonicalName("A.B") == "a.b.");
  CHECK(CanonicalName("a.b.") == "a.b.");
}

}  // namespace
}  // namespace ppe::dns
