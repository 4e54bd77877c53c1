#include "ppe-service/config/config_loader.h"

#include <regex>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/config/defaults.h"
#include "ppe-service/config/text_proto.h"
#include "ppe-service/config/validators.h"

namespace ppe::config {
namespace {

using ppe::config::v1::PpeConfig;

// The settings that were strings before they became enums: an old config
// (`store: "etcd"`) gets an error saying how to write it now, not only the
// parser's "Expected integer or identifier".
struct EnumField {
  const char* section;  // the message it is in, as written
  const char* name;     // the field as written
  const google::protobuf::EnumDescriptor* values;
};

// The innermost section (`name {`) open at `offset` of a text-format config.
std::string SectionAt(const std::string& text, size_t offset) {
  std::vector<std::string> open;
  std::string word;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '"' || ch == '\'') {  // skip a quoted value
      for (++i; i < text.size() && text[i] != ch; ++i) {
        if (text[i] == '\\') ++i;
      }
    } else if (ch == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '_') {
      if (i == 0 ||
          !(absl::ascii_isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_')) {
        word.clear();
      }
      word.push_back(ch);
    } else if (ch == '{' || ch == '<') {
      open.push_back(word);
    } else if ((ch == '}' || ch == '>') && !open.empty()) {
      open.pop_back();
    }
  }
  return open.empty() ? "" : open.back();
}

std::string EnumHint(const std::string& text, const absl::Status& parse_error) {
  const std::vector<EnumField> fields = {{"scaler", "mode", v1::Scaler::Mode_descriptor()},
                                         {"registry", "store", v1::Registry::Store_descriptor()},
                                         {"usage", "mode", v1::Usage::Mode_descriptor()}};
  // The first error is "ORIGIN:LINE:COL: ..."; the hint needs the line.
  std::vector<std::string> parts = absl::StrSplit(parse_error.message(), ':');
  int line = 0;
  for (size_t i = 1; i + 1 < parts.size() && line == 0; ++i) {
    int l = 0, col = 0;
    if (absl::SimpleAtoi(parts[i], &l) && absl::SimpleAtoi(parts[i + 1], &col)) line = l;
  }
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (line < 1 || line > static_cast<int>(lines.size())) return "";
  size_t line_start = 0;
  for (int l = 1; l < line; ++l) line_start += lines[l - 1].size() + 1;
  static const std::regex kQuoted(R"re(\b(\w+)\s*:\s*"([^"]*)")re");
  const std::string& bad = lines[line - 1];
  for (std::sregex_iterator m(bad.begin(), bad.end(), kQuoted), end; m != end; ++m) {
    const std::string section = SectionAt(text, line_start + m->position(0));
    for (const EnumField& f : fields) {
      if ((*m)[1] != f.name || section != f.section) continue;
      const google::protobuf::EnumValueDescriptor* value =
          f.values->FindValueByName(absl::AsciiStrToUpper((*m)[2].str()));
      std::vector<std::string> names;
      for (int v = 1; v < f.values->value_count(); ++v) names.push_back(f.values->value(v)->name());
      return absl::StrCat(" (", f.section, ".", f.name,
                          " is an enum, written without quotes: ", f.name, ": ",
                          value != nullptr ? value->name() : absl::StrJoin(names, " | "), ")");
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<PpeConfig> ParsePpeConfig(const std::string& text, const std::string& origin) {
  PpeConfig c;
  if (absl::Status s = ParseTextProto(text, origin, c); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(s.message(), EnumHint(text, s)));
  }
  FillDefaults(c);
  PPE_RETURN_IF_ERROR(CheckPpeConfig(c, origin));
  return c;
}

absl::StatusOr<PpeConfig> LoadPpeConfig(const std::string& path) {
  PPE_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path));
  return ParsePpeConfig(text, path);
}

}  // namespace ppe::config
