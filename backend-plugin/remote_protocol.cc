#include "backend-plugin/remote_protocol.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"

namespace ppe::plugin {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Reads an optional string member; a present member of another type is an error.
bool GetString(const rapidjson::Value& obj, const char* key, std::string& out) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return true;
  if (!it->value.IsString()) return false;
  out.assign(it->value.GetString(), it->value.GetStringLength());
  return true;
}

// Reads an optional integer member (pdns sends numbers; tolerate numeric strings).
bool GetInt(const rapidjson::Value& obj, const char* key, int& out) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return true;
  if (it->value.IsInt()) {
    out = it->value.GetInt();
    return true;
  }
  if (it->value.IsString()) {
    char* end = nullptr;
    long v = std::strtol(it->value.GetString(), &end, 10);
    if (end == it->value.GetString() || *end != '\0') return false;
    out = static_cast<int>(v);
    return true;
  }
  return false;
}

void WriteLog(Writer& w, absl::string_view log) {
  if (log.empty()) return;
  w.Key("log");
  w.StartArray();
  w.String(log.data(), static_cast<rapidjson::SizeType>(log.size()));
  w.EndArray();
}

void WriteDomain(Writer& w, const DomainInfo& d) {
  w.StartObject();
  w.Key("id");
  w.Int(d.id);
  w.Key("zone");
  w.String(d.zone.c_str(), static_cast<rapidjson::SizeType>(d.zone.size()));
  w.Key("kind");
  w.String("native");
  w.Key("serial");
  w.Uint(d.serial);
  w.Key("notified_serial");
  w.Uint(d.serial);
  w.Key("last_check");
  w.Int(0);
  w.Key("masters");
  w.StartArray();
  w.EndArray();
  w.EndObject();
}

}  // namespace

absl::StatusOr<Request> ParseRequest(absl::string_view line) {
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed JSON at offset ", doc.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) return absl::InvalidArgumentError("request is not a JSON object");
  Request req;
  auto method = doc.FindMember("method");
  if (method == doc.MemberEnd() || !method->value.IsString()) {
    return absl::InvalidArgumentError("request has no string \"method\"");
  }
  req.method.assign(method->value.GetString(), method->value.GetStringLength());
  auto params_it = doc.FindMember("parameters");
  if (params_it == doc.MemberEnd()) return req;
  const rapidjson::Value& p = params_it->value;
  if (!p.IsObject()) return absl::InvalidArgumentError("\"parameters\" is not an object");
  bool ok = GetString(p, "qtype", req.qtype) && GetString(p, "qname", req.qname) &&
            GetString(p, "remote", req.remote) && GetString(p, "local", req.local) &&
            GetString(p, "real-remote", req.real_remote) && GetInt(p, "zone-id", req.zone_id) &&
            GetString(p, "name", req.name) && GetInt(p, "domain_id", req.domain_id);
  if (ok && req.name.empty()) ok = GetString(p, "zonename", req.name);
  if (!ok) return absl::InvalidArgumentError("a parameter has the wrong type");
  if (req.method == "lookup" && (req.qname.empty() || req.qtype.empty())) {
    return absl::InvalidArgumentError("lookup needs qname and qtype");
  }
  return req;
}

std::string ReplyTrue() { return R"({"result":true})"; }
std::string ReplyEmptyObject() { return R"({"result":{}})"; }
std::string ReplyEmptyArray() { return R"({"result":[]})"; }

std::string ReplyFalse(absl::string_view log) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("result");
  w.Bool(false);
  WriteLog(w, log);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string ReplyRecords(const google::protobuf::RepeatedPtrField<ppe::v1::Record>& records,
                         int domain_id, absl::string_view log) {
  if (records.empty()) return ReplyFalse(log);
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("result");
  w.StartArray();
  for (const ppe::v1::Record& r : records) {
    w.StartObject();
    w.Key("qtype");
    w.String(r.qtype().data(), static_cast<rapidjson::SizeType>(r.qtype().size()));
    w.Key("qname");
    w.String(r.qname().data(), static_cast<rapidjson::SizeType>(r.qname().size()));
    w.Key("content");
    w.String(r.content().data(), static_cast<rapidjson::SizeType>(r.content().size()));
    w.Key("ttl");
    w.Uint(r.ttl());
    w.Key("auth");
    w.Int(1);
    if (domain_id >= 0) {
      w.Key("domain_id");
      w.Int(domain_id);
    }
    w.Key("scopeMask");
    w.Uint(r.scope_mask());
    w.EndObject();
  }
  w.EndArray();
  WriteLog(w, log);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string ReplyDomains(const std::vector<DomainInfo>& domains) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("result");
  w.StartArray();
  for (const DomainInfo& d : domains) WriteDomain(w, d);
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string ReplyDomain(const DomainInfo& domain) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("result");
  WriteDomain(w, domain);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace ppe::plugin
