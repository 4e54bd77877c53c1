#pragma once

// Reading a config file in protobuf text format: shared by ppe-server's config
// loader and the pdns plugin's, so both name the file, line and field the same way.
#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::config {

// The whole file; NOT_FOUND "cannot read config file PATH" when it cannot be read.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path);

// Parses `text` into `msg`; INVALID_ARGUMENT "ORIGIN:LINE:COL: message" per error.
absl::Status ParseTextProto(const std::string& text, const std::string& origin,
                            google::protobuf::Message& msg);

template <typename Message>
absl::StatusOr<Message> ParseTextProto(const std::string& text, const std::string& origin) {
  Message msg;
  PPE_RETURN_IF_ERROR(ParseTextProto(text, origin, msg));
  return msg;
}

// INVALID_ARGUMENT "ORIGIN: FIELD: WHAT", the form every validation error takes
// ("FIELD: WHAT" when `origin` is empty).
absl::Status FieldError(const std::string& origin, const std::string& field,
                        const std::string& what);

}  // namespace ppe::config
