#pragma once

// The command-line flags of our small tools (ppectl, ppe-forecast): each flag is
// declared once with where its value goes, then argv is walked once.
//   --name VALUE or --name=VALUE   a flag with a value
//   --name                         a switch
//   anything else                  a positional argument
#include <functional>
#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ppe {

class FlagParser {
 public:
  // Receives a flag's value; an error refuses the command line with its message.
  using Setter = std::function<absl::Status(absl::string_view value)>;

  void String(const std::string& name, std::string* out);
  // Whole numbers and numbers; INVALID_ARGUMENT "--name: not a number: V" otherwise.
  void Int(const std::string& name, int* out);
  void Double(const std::string& name, double* out);
  void Switch(const std::string& name, bool* out);  // takes no value; sets *out = true
  void Custom(const std::string& name, Setter set);
  // Positional arguments, in order. Without it, one is an error.
  void Positionals(Setter take);
  // Flags not declared, with their value: for tools whose options depend on a
  // command given later. Without it, an undeclared flag is an error.
  void Others(std::map<std::string, std::string>* out);

  // Walks argv[1..argc); the first error stops it.
  absl::Status Parse(int argc, const char* const* argv) const;

  // Conversions for Custom setters; INVALID_ARGUMENT naming the flag.
  static absl::Status ToInt(absl::string_view flag, absl::string_view value, int* out);
  static absl::Status ToDouble(absl::string_view flag, absl::string_view value, double* out);

 private:
  struct Flag {
    bool takes_value = true;
    Setter set;
  };
  absl::flat_hash_map<std::string, Flag> flags_;
  Setter positional_;
  std::map<std::string, std::string>* others_ = nullptr;
};

}  // namespace ppe
