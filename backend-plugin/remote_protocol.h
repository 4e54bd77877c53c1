#pragma once

#include <string>
#include <vector>

#include <google/protobuf/repeated_ptr_field.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ppe/v1/resolver.pb.h"

namespace ppe::plugin {

// One request of the PowerDNS remote backend protocol (one JSON object a line).
// pdns's JSON has sorted keys and ": " separators; this is a real JSON parser
// (RapidJSON), so key order and whitespace do not matter.
struct Request {
  std::string method;
  // lookup
  std::string qtype, qname, remote, local, real_remote;
  int zone_id = -1;
  // getDomainInfo, getDomainMetadata, getAllDomainMetadata: "name"; list: "zonename"
  std::string name;
  int domain_id = -1;  // list
};

// INVALID_ARGUMENT with a short reason for anything that is not a JSON object
// with a string "method" and an object "parameters" whose fields have the right types.
absl::StatusOr<Request> ParseRequest(absl::string_view line);

// Replies, each without the trailing newline.
std::string ReplyTrue();
std::string ReplyFalse(absl::string_view log = {});
std::string ReplyEmptyObject();  // {"result":{}}
std::string ReplyEmptyArray();   // {"result":[]}
// Writes a look-up reply straight into `out` (cleared first), with no
// intermediate objects: Add() each record, then Finish(), which closes the
// array, or writes {"result":false} when no record was added. ReplyRecords
// uses it, so every look-up reply has one format.
class RecordsReply {
 public:
  RecordsReply(std::string& out, int domain_id) : out_(out), domain_id_(domain_id) {
    out_.reserve(256);  // one record and the connector's newline, without regrowing
    out_.assign(R"({"result":[)");
  }
  void Add(absl::string_view qtype, absl::string_view qname, absl::string_view content,
           uint32_t ttl, uint32_t scope_mask);
  // `ip` in network byte order, formatted as dotted quad.
  void AddA(absl::string_view qname, uint32_t ip, uint32_t ttl, uint32_t scope_mask);
  void Finish();

 private:
  void Open(absl::string_view qtype, absl::string_view qname);
  void Close(uint32_t ttl, uint32_t scope_mask);

  std::string& out_;
  int domain_id_;
  size_t count_ = 0;
};

// {"result":[records]} or {"result":false} when there are none. ttl and scopeMask are numbers.
std::string ReplyRecords(const google::protobuf::RepeatedPtrField<ppe::v1::Record>& records,
                         int domain_id, absl::string_view log = {});

struct DomainInfo {
  int id;
  std::string zone;
  uint32_t serial;
};
std::string ReplyDomains(const std::vector<DomainInfo>& domains);
std::string ReplyDomain(const DomainInfo& domain);

}  // namespace ppe::plugin
