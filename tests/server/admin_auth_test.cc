#include "ppe-service/server/admin_auth.h"

#include "ppe-service/config/validators.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

namespace ppe::server {
namespace {

using ppe::config::v1::PpeConfig;

// A peer as the TLS handshake would describe it.
class FakeAuthContext final : public grpc::AuthContext {
 public:
  FakeAuthContext(bool authenticated, std::vector<std::string> common_names)
      : authenticated_(authenticated), names_(std::move(common_names)) {}
  bool IsPeerAuthenticated() const override { return authenticated_; }
  std::vector<grpc::string_ref> GetPeerIdentity() const override { return Refs(); }
  std::string GetPeerIdentityPropertyName() const override { return "x509_common_name"; }
  std::vector<grpc::string_ref> FindPropertyValues(const std::string& name) const override {
    return name == "x509_common_name" ? Refs() : std::vector<grpc::string_ref>{};
  }
  grpc::AuthPropertyIterator begin() const override { return Iterator(); }
  grpc::AuthPropertyIterator end() const override { return Iterator(); }
  void AddProperty(const std::string&, const grpc::string_ref&) override {}
  bool SetPeerIdentityPropertyName(const std::string&) override { return false; }

 private:
  struct Iterator : grpc::AuthPropertyIterator {};
  std::vector<grpc::string_ref> Refs() const {
    std::vector<grpc::string_ref> out;
    for (const auto& n : names_) out.emplace_back(n);
    return out;
  }
  bool authenticated_;
  std::vector<std::string> names_;
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ppe-auth-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text, mode_t mode) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    chmod(p.c_str(), mode);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

PpeConfig Config(const std::string& mode, const std::string& admin_listen = "127.0.0.1:0") {
  PpeConfig c;
  c.set_listen("127.0.0.1:50051");
  c.set_admin_listen(admin_listen);
  c.mutable_admin_auth()->set_mode(mode);
  return c;
}

std::string Error(const PpeConfig& c) {
  absl::Status s = config::CheckAdminAuth(c, "");
  return s.ok() ? "OK" : std::string(s.message());
}

constexpr const char* kToken = "s3cret-token-0123456789";

TEST_CASE("admin_auth config: each mistake is refused naming its field", "[security]") {
  CHECK(Error(Config("")) == "OK");
  CHECK(Error(Config("none", "")) == "OK");
  CHECK_THAT(Error(Config("password")),
             Catch::StartsWith("admin_auth.mode: unknown mode 'password'"));
  PpeConfig token = Config("token", "");
  token.mutable_admin_auth()->set_token_file("/x");
  CHECK_THAT(Error(token), Catch::StartsWith("admin_listen: is required with admin_auth.mode"));
  CHECK_THAT(Error(Config("mtls", "")), Catch::StartsWith("admin_listen: is required"));
  CHECK_THAT(Error(Config("token")), Catch::StartsWith("admin_auth.token_file: is required"));
  PpeConfig same = Config("none", "127.0.0.1:50051");
  CHECK_THAT(Error(same), Catch::StartsWith("admin_listen: must differ from listen"));
  PpeConfig mtls = Config("mtls");
  CHECK_THAT(Error(mtls), Catch::StartsWith("admin_auth.tls_cert_file: mode 'mtls' needs"));
  mtls.mutable_admin_auth()->set_tls_cert_file("c.pem");
  CHECK_THAT(Error(mtls), Catch::StartsWith("admin_auth.tls_key_file: tls_cert_file and"));
  mtls.mutable_admin_auth()->set_tls_key_file("k.pem");
  CHECK_THAT(Error(mtls), Catch::StartsWith("admin_auth.client_ca_file: mode 'mtls' needs"));
  mtls.mutable_admin_auth()->set_client_ca_file("ca.pem");
  CHECK(Error(mtls) == "OK");
  mtls.mutable_admin_auth()->add_allowed_client_names("");
  CHECK_THAT(Error(mtls), Catch::StartsWith("admin_auth.allowed_client_names[0]: is empty"));
  PpeConfig none = Config("none");
  none.mutable_admin_auth()->set_token_file("/x");
  CHECK_THAT(Error(none), Catch::StartsWith("admin_auth.token_file: is only used with mode"));
  none = Config("none");
  none.mutable_admin_auth()->add_allowed_client_names("ops");
  CHECK_THAT(Error(none), Catch::StartsWith("admin_auth.allowed_client_names: is only used"));
}

TEST_CASE("admin_auth token_file: must exist, be private and hold long tokens", "[security]") {
  TempDir dir;
  PpeConfig c = Config("token");
  auto error = [&](const std::string& path) {
    c.mutable_admin_auth()->set_token_file(path);
    auto a = AdminAuthorizer::Create(c);
    return a.ok() ? std::string("OK") : std::string(a.status().message());
  };
  CHECK_THAT(error(dir.path() + "/missing"),
             Catch::StartsWith("admin_auth.token_file: " + dir.path() + "/missing: No such file"));
  CHECK_THAT(error(dir.Write("group", std::string(kToken) + "\n", 0640)),
             Catch::Contains("accessible by group or others (mode 0640)"));
  CHECK_THAT(error(dir.Write("others", std::string(kToken) + "\n", 0604)),
             Catch::Contains("accessible by group or others"));
  CHECK_THAT(error(dir.Write("short", "# comment\nshort\n", 0600)),
             Catch::Contains("short:2: token shorter than 16 characters"));
  CHECK_THAT(error(dir.Write("empty", "# only a comment\n\n", 0600)),
             Catch::Contains("holds no token"));
  CHECK(error(dir.Write("ok", std::string("# ops\n") + kToken + "\n  second-token-abcdefgh  \n",
                        0600)) == "OK");
}

TEST_CASE("admin_auth token: right token passes, anything else is UNAUTHENTICATED", "[security]") {
  auto auth = AdminAuthorizer::ForTokens({kToken, "second-token-abcdefgh"});
  CHECK(auth->AuthorizeToken(std::string("Bearer ") + kToken).ok());
  CHECK(auth->AuthorizeToken(std::string("bearer ") + kToken).ok());
  CHECK(auth->AuthorizeToken("Bearer second-token-abcdefgh").ok());
  for (std::string bad : {std::string(), std::string("Bearer "), std::string(kToken),
                          std::string("Basic ") + kToken, std::string("Bearer ") + kToken + "x",
                          std::string("Bearer s3cret-token-012345678"), std::string("Bearer x")}) {
    INFO(bad);
    CHECK(auth->AuthorizeToken(bad).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_CASE("admin_auth mtls: verified name in the list passes, others are PERMISSION_DENIED",
          "[security]") {
  auto auth = AdminAuthorizer::ForClientNames({"ops-admin", "origin-1"});
  FakeAuthContext ops(true, {"ops-admin"}), other(true, {"intruder"}), unverified(false, {}),
      nameless(true, {});
  CHECK(auth->AuthorizePeer(&ops).ok());
  CHECK(auth->AuthorizePeer(&other).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(auth->AuthorizePeer(&unverified).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(auth->AuthorizePeer(&nameless).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(auth->AuthorizePeer(nullptr).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  auto any = AdminAuthorizer::ForClientNames({});
  CHECK(any->AuthorizePeer(&other).ok());
}

}  // namespace
}  // namespace ppe::server
