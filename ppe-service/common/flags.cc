#include "ppe-service/common/flags.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/status_macros.h"

namespace ppe {

void FlagParser::String(const std::string& name, std::string* out) {
  Custom(name, [out](absl::string_view v) {
    *out = std::string(v);
    return absl::OkStatus();
  });
}

void FlagParser::Int(const std::string& name, int* out) {
  Custom(name, [name, out](absl::string_view v) { return ToInt(name, v, out); });
}

void FlagParser::Double(const std::string& name, double* out) {
  Custom(name, [name, out](absl::string_view v) { return ToDouble(name, v, out); });
}

void FlagParser::Switch(const std::string& name, bool* out) {
  flags_[name] = Flag{.takes_value = false, .set = [out](absl::string_view) {
                        *out = true;
                        return absl::OkStatus();
                      }};
}

void FlagParser::Custom(const std::string& name, Setter set) {
  flags_[name] = Flag{.takes_value = true, .set = std::move(set)};
}

void FlagParser::Positionals(Setter take) { positional_ = std::move(take); }

void FlagParser::Others(std::map<std::string, std::string>* out) { others_ = out; }

absl::Status FlagParser::ToInt(absl::string_view flag, absl::string_view value, int* out) {
  if (!absl::SimpleAtoi(value, out)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": not a whole number: ", value));
  }
  return absl::OkStatus();
}

absl::Status FlagParser::ToDouble(absl::string_view flag, absl::string_view value, double* out) {
  if (!absl::SimpleAtod(value, out)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": not a number: ", value));
  }
  return absl::OkStatus();
}

absl::Status FlagParser::Parse(int argc, const char* const* argv) const {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      if (!positional_) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
      }
      PPE_RETURN_IF_ERROR(positional_(arg));
      continue;
    }
    absl::string_view name = arg.substr(2);
    absl::string_view value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != absl::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = flags_.find(name);
    if (it != flags_.end() && !it->second.takes_value) {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      PPE_RETURN_IF_ERROR(it->second.set(""));
      continue;
    }
    if (it == flags_.end() && others_ == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    }
    if (!has_value) {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    if (it == flags_.end()) {
      (*others_)[std::string(name)] = std::string(value);
    } else if (absl::Status s = it->second.set(value); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace ppe
