#include "ppe-service/config/text_proto.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ppe::config {
namespace {

// Collects the text-format parser's errors with their line and column.
class ErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  explicit ErrorCollector(std::string origin) : origin_(std::move(origin)) {}
  void AddError(int line, int column, const std::string& message) override {
    errors_.push_back(absl::StrCat(origin_, ":", line + 1, ":", column + 1, ": ", message));
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::string origin_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status ParseTextProto(const std::string& text, const std::string& origin,
                            google::protobuf::Message& msg) {
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors(origin);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &msg)) return absl::InvalidArgumentError(errors.Joined());
  return absl::OkStatus();
}

absl::Status FieldError(const std::string& origin, const std::string& field,
                        const std::string& what) {
  if (origin.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", field, ": ", what));
}

}  // namespace ppe::config
