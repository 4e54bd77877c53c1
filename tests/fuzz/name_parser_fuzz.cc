// libFuzzer target: NameParser::Parse on arbitrary query names, for a normal
// zone and the root zone. Parsing is case-insensitive, and a tagged name's
// parts rebuild a name that parses the same.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/dns/name_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using ppe::dns::NameParser;
using ppe::dns::ParsedName;

const std::vector<NameParser>& Parsers() {
  static auto* parsers = new std::vector<NameParser>{
      NameParser("Cdn.Example.TEST", {"video", "DB"}), NameParser(".", {"video"})};
  return *parsers;
}

bool Same(const ParsedName& a, const ParsedName& b) {
  return a.kind == b.kind && a.service == b.service && a.cpt_label == b.cpt_label;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view qname(reinterpret_cast<const char*>(data), size);
  std::string canonical = ppe::dns::CanonicalName(qname);
  PPE_FUZZ_CHECK(!canonical.empty() && canonical.back() == '.');
  PPE_FUZZ_CHECK(ppe::dns::CanonicalName(canonical) == canonical);
  for (const NameParser& parser : Parsers()) {
    ParsedName p = parser.Parse(qname);
    PPE_FUZZ_CHECK(Same(p, parser.Parse(absl::AsciiStrToUpper(qname))));
    PPE_FUZZ_CHECK(Same(p, parser.Parse(canonical)));
    switch (p.kind) {
      case ParsedName::Kind::kTagged: {
        PPE_FUZZ_CHECK(!p.cpt_label.empty() && p.cpt_label.find('.') == std::string::npos);
        PPE_FUZZ_CHECK(!p.service.empty());
        std::string rebuilt = parser.zone() == "."
                                  ? absl::StrCat(p.cpt_label, ".", p.service, ".")
                                  : absl::StrCat(p.cpt_label, ".", p.service, ".", parser.zone());
        PPE_FUZZ_CHECK(Same(p, parser.Parse(rebuilt)));
        break;
      }
      case ParsedName::Kind::kUntagged:
        PPE_FUZZ_CHECK(!p.service.empty() && p.cpt_label.empty());
        break;
      default:
        PPE_FUZZ_CHECK(p.service.empty() && p.cpt_label.empty());
    }
  }
  return 0;
}
