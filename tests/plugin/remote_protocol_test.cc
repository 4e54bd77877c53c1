#include "backend-plugin/remote_protocol.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <thread>

#include <catch2/catch.hpp>

#include "backend-plugin/backend.h"
#include "backend-plugin/connector.h"
#include "tests/mocks/test_zones.h"

namespace ppe::plugin {
namespace {

// Lines pdns 4.7.3 sent, verbatim (docs/design.md, "PowerDNS facts the code
// depends on").
constexpr const char* kInitialize =
    R"({"method": "initialize", "parameters": {"command": "/path/backend", "myopt": "hello", "timeout": "2000"}})";
constexpr const char* kGetAllDomains =
    R"({"method": "getAllDomains", "parameters": {"include_disabled": true}})";
constexpr const char* kApexLookup =
    R"({"method": "lookup", "parameters": {"local": "0.0.0.0", "qname": "example.test.", "qtype": "ANY", "real-remote": "0.0.0.0/0", "remote": "0.0.0.0", "zone-id": 1}})";
constexpr const char* kMetadata =
    R"({"method": "getAllDomainMetadata", "parameters": {"name": "example.test."}})";
constexpr const char* kClientLookup =
    R"({"method": "lookup", "parameters": {"local": "127.0.0.1", "qname": "WwW.Example.TEST.", "qtype": "ANY", "real-remote": "127.0.0.1/32", "remote": "127.0.0.1", "zone-id": 1}})";
constexpr const char* kList =
    R"({"method": "list", "parameters": {"domain_id": 1, "include_disabled": false, "zonename": "example.test."}})";

TEST_CASE("parses the lines pdns 4.7.3 sends") {
  auto init = ParseRequest(kInitialize);
  REQUIRE(init.ok());
  CHECK(init->method == "initialize");
  CHECK(ParseRequest(kGetAllDomains)->method == "getAllDomains");
  auto apex = ParseRequest(kApexLookup);
  REQUIRE(apex.ok());
  CHECK(apex->qname == "example.test.");
  CHECK(apex->real_remote == "0.0.0.0/0");
  CHECK(apex->zone_id == 1);
  CHECK(ParseRequest(kMetadata)->name == "example.test.");
  auto client = ParseRequest(kClientLookup);
  REQUIRE(client.ok());
  CHECK(client->qname == "WwW.Example.TEST.");
  CHECK(client->qtype == "ANY");
  CHECK(client->remote == "127.0.0.1");
  CHECK(client->local == "127.0.0.1");
  CHECK(client->real_remote == "127.0.0.1/32");
  auto list = ParseRequest(kList);
  REQUIRE(list.ok());
  CHECK(list->name == "example.test.");
  CHECK(list->domain_id == 1);
}

TEST_CASE("key order and whitespace do not matter; zone-id -1 and numeric strings are accepted") {
  auto r = ParseRequest(
      R"({"parameters":{"zone-id":-1,"qtype":"SOA","qname":"a.b."},"method":"lookup"})");
  REQUIRE(r.ok());
  CHECK(r->zone_id == -1);
  CHECK(ParseRequest(R"({"method":"lookup","parameters":{"qname":"a.","qtype":"A","zone-id":"7"}})")
            ->zone_id == 7);
}

TEST_CASE("malformed requests are errors, not crashes") {
  for (const char* bad : {"", "{", "[]", "null", "42", R"({"method": 1})", R"({"parameters": {}})",
                          R"({"method": "lookup", "parameters": []})",
                          R"({"method": "lookup", "parameters": {"qname": 5, "qtype": "A"}})",
                          R"({"method": "lookup", "parameters": {"qtype": "A"}})",
                          R"({"method": "lookup"} trailing)", "\xff\xfe garbage"}) {
    INFO(bad);
    CHECK(ParseRequest(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("replies: ttl and scopeMask are JSON numbers; no records is false") {
  google::protobuf::RepeatedPtrField<ppe::v1::Record> records;
  ppe::v1::Record* r = records.Add();
  r->set_qname("x.video.cdn.example.test.");
  r->set_qtype("A");
  r->set_content("192.0.2.1");
  r->set_ttl(30);
  r->set_scope_mask(24);
  CHECK(
      ReplyRecords(records, 1) ==
      R"({"result":[{"qtype":"A","qname":"x.video.cdn.example.test.","content":"192.0.2.1","ttl":30,"auth":1,"domain_id":1,"scopeMask":24}]})");
  CHECK(ReplyRecords({}, 1) == R"({"result":false})");
  CHECK(ReplyFalse("a \"quoted\" reason") == R"({"result":false,"log":["a \"quoted\" reason"]})");
  CHECK(
      ReplyDomains({{1, "cdn.example.test.", 7}}) ==
      R"({"result":[{"id":1,"zone":"cdn.example.test.","kind":"native","serial":7,"notified_serial":7,"last_check":0,"masters":[]}]})");
}

TEST_CASE("records are formatted directly: strings escaped as JSON, A addresses dotted") {
  std::string out = "stale contents";
  RecordsReply reply(out, 3);
  reply.Add("TXT", "a\"b\\c.example.test.", std::string("x\n\x01\xc3\xa9", 5), 5, 0);
  reply.AddA("n.example.test.", htonl(0xC0000201), 30, 24);  // 192.0.2.1
  reply.Finish();
  CHECK(
      out ==
      R"({"result":[{"qtype":"TXT","qname":"a\"b\\c.example.test.","content":"x\n\u0001)"
      "\xc3\xa9"  // other bytes pass as they are, as rapidjson's Writer leaves them
      R"(","ttl":5,"auth":1,"domain_id":3,"scopeMask":0},)"
      R"({"qtype":"A","qname":"n.example.test.","content":"192.0.2.1","ttl":30,"auth":1,"domain_id":3,"scopeMask":24}]})");
  RecordsReply none(out, 3);
  none.Finish();
  CHECK(out == R"({"result":false})");
}

// A backend whose PPE is unreachable: everything here is answered locally.
struct OfflineBackend {
  OfflineBackend() : client({.target = "127.0.0.1:1", .deadline = absl::Milliseconds(50)}) {
    zones.Set(testing::TestZones());
  }
  ZoneCache zones;
  PpeClient client;
  Backend backend{zones, client};
};

std::string Lookup(Backend& b, const std::string& qname, const std::string& qtype) {
  return b.Handle(
      R"({"method":"lookup","parameters":{"qname":")" + qname + R"(","qtype":")" + qtype +
      R"(","remote":"10.0.0.1","local":"127.0.0.1","real-remote":"10.0.0.0/24","zone-id":1}})");
}

TEST_CASE("backend: apex, SOA walk, unknown names and fallback without the PPE") {
  OfflineBackend o;
  Backend& b = o.backend;
  CHECK(b.Handle(kInitialize) == R"({"result":true})");
  CHECK(b.Handle(kGetAllDomains).find(R"("zone":"cdn.example.test.")") != std::string::npos);
  CHECK(b.Handle(R"({"method":"getDomainInfo","parameters":{"name":"CDN.example.test."}})")
            .find(R"("serial":3)") != std::string::npos);
  CHECK(b.Handle(R"({"method":"getDomainInfo","parameters":{"name":"other.test."}})") ==
        R"({"result":false})");
  CHECK(b.Handle(kMetadata) == R"({"result":{}})");
  CHECK(Lookup(b, "Cdn.Example.Test.", "SOA").find(R"("qtype":"SOA")") != std::string::npos);
  CHECK(Lookup(b, "Cdn.Example.Test.", "SOA").find(R"("qname":"Cdn.Example.Test.")") !=
        std::string::npos);
  CHECK(Lookup(b, "cdn.example.test.", "A") == R"({"result":false})");
  CHECK(Lookup(b, "x.video.cdn.example.test.", "SOA") == R"({"result":false})");
  CHECK(Lookup(b, "mail.cdn.example.test.", "A") == R"({"result":false})");
  CHECK(Lookup(b, "www.example.org.", "A") == R"({"result":false})");
  CHECK(b.stats().forwarded == 0);

  std::string fb = Lookup(b, "abc.video.cdn.example.test.", "A");
  CHECK(fb.find(R"("content":"192.0.2.10","ttl":5)") != std::string::npos);
  CHECK(fb.find(R"("scopeMask":24)") != std::string::npos);  // never cached by pdns
  CHECK(fb.find("2001:db8::10") == std::string::npos);
  std::string any = Lookup(b, "video.cdn.example.test.", "ANY");
  CHECK(any.find("192.0.2.10") != std::string::npos);
  CHECK(any.find(R"("qtype":"AAAA","qname":"video.cdn.example.test.","content":"2001:db8::10")") !=
        std::string::npos);
  CHECK(b.stats().fallbacks == 2);

  std::string unknown = b.Handle(R"({"method":"setNotified","parameters":{"id":1,"serial":2}})");
  CHECK(unknown.find(R"("result":false)") != std::string::npos);
  CHECK(unknown.find("not supported") != std::string::npos);
}

TEST_CASE("stream: every line gets one reply; oversized and malformed lines keep it usable") {
  OfflineBackend o;
  int to_backend[2], from_backend[2];
  REQUIRE(pipe(to_backend) == 0);
  REQUIRE(pipe(from_backend) == 0);
  std::thread server([&] {
    ServeStream(to_backend[0], from_backend[1], o.backend);
    close(from_backend[1]);
  });
  std::thread writer([&] {
    std::string input = std::string(kInitialize) + "\n" + "not json\n" +
                        std::string(kMaxLineBytes + 100, 'x') + "\n" + kGetAllDomains + "\r\n";
    size_t off = 0;
    while (off < input.size()) {
      ssize_t n = write(to_backend[1], input.data() + off, input.size() - off);
      REQUIRE(n > 0);
      off += static_cast<size_t>(n);
    }
    close(to_backend[1]);
  });
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(from_backend[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  writer.join();
  server.join();
  close(to_backend[0]);
  close(from_backend[0]);
  std::vector<std::string> lines;
  size_t start = 0, nl;
  while ((nl = out.find('\n', start)) != std::string::npos) {
    lines.push_back(out.substr(start, nl - start));
    start = nl + 1;
  }
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == R"({"result":true})");
  CHECK(lines[1].find("malformed JSON") != std::string::npos);
  CHECK(lines[2].find("longer than") != std::string::npos);
  CHECK(lines[3].find("cdn.example.test.") != std::string::npos);
}

}  // namespace
}  // namespace ppe::plugin
