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
  // pdns's requests are small: the DOM lives in a stack buffer (rapidjson's
  // default pool would allocate 64 KiB for each request), spilling to the heap
  // only for larger ones.
  using Pool = rapidjson::MemoryPoolAllocator<>;
  constexpr size_t kSpill = 4096;  // further chunks, only for unusual requests
  char value_buffer[4096], parse_buffer[2048];
  Pool value_pool(value_buffer, sizeof value_buffer, kSpill);
  Pool parse_pool(parse_buffer, sizeof parse_buffer, kSpill);
  rapidjson::GenericDocument<rapidjson::UTF8<>, Pool, Pool> doc(&value_pool, 512, &parse_pool);
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

namespace {

// A JSON string literal, as rapidjson's Writer escapes it: quote, backslash and
// control characters; other bytes as they are.
void AppendJsonString(std::string& out, absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u == '"' || u == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      const char* named = u == '\b'   ? "b"
                          : u == '\f' ? "f"
                          : u == '\n' ? "n"
                          : u == '\r' ? "r"
                          : u == '\t' ? "t"
                                      : nullptr;
      out.push_back('\\');
      if (named != nullptr) {
        out.append(named);
      } else {
        out.append("u00");
        out.push_back(kHex[u >> 4]);
        out.push_back(kHex[u & 15]);
      }
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void AppendUint(std::string& out, uint64_t v) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out.push_back(digits[--n]);
}

}  // namespace

void RecordsReply::Open(absl::string_view qtype, absl::string_view qname) {
  if (count_++ > 0) out_.push_back(',');
  out_.append(R"({"qtype":)");
  AppendJsonString(out_, qtype);
  out_.append(R"(,"qname":)");
  AppendJsonString(out_, qname);
  out_.append(R"(,"content":)");
}

void RecordsReply::Close(uint32_t ttl, uint32_t scope_mask) {
  out_.append(R"(,"ttl":)");
  AppendUint(out_, ttl);
  out_.append(R"(,"auth":1)");
  if (domain_id_ >= 0) {
    out_.append(R"(,"domain_id":)");
    AppendUint(out_, static_cast<uint64_t>(domain_id_));
  }
  out_.append(R"(,"scopeMask":)");
  AppendUint(out_, scope_mask);
  out_.push_back('}');
}

void RecordsReply::Add(absl::string_view qtype, absl::string_view qname, absl::string_view content,
                       uint32_t ttl, uint32_t scope_mask) {
  Open(qtype, qname);
  AppendJsonString(out_, content);
  Close(ttl, scope_mask);
}

void RecordsReply::AddA(absl::string_view qname, uint32_t ip, uint32_t ttl, uint32_t scope_mask) {
  Open("A", qname);
  const auto* b = reinterpret_cast<const unsigned char*>(&ip);
  out_.push_back('"');
  for (int i = 0; i < 4; ++i) {
    if (i > 0) out_.push_back('.');
    AppendUint(out_, b[i]);
  }
  out_.push_back('"');
  Close(ttl, scope_mask);
}

void RecordsReply::Finish() {
  if (count_ == 0) {
    out_.assign(R"({"result":false})");
  } else {
    out_.append("]}");
  }
}

std::string ReplyRecords(const google::protobuf::RepeatedPtrField<ppe::v1::Record>& records,
                         int domain_id, absl::string_view log) {
  if (records.empty()) return ReplyFalse(log);
  std::string out;
  RecordsReply reply(out, domain_id);
  for (const ppe::v1::Record& r : records) {
    reply.Add(r.qtype(), r.qname(), r.content(), r.ttl(), r.scope_mask());
  }
  reply.Finish();
  if (!log.empty()) {  // {"result":[...],"log":[...]}
    out.pop_back();
    out.append(R"(,"log":[)");
    AppendJsonString(out, log);
    out.append("]}");
  }
  return out;
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
