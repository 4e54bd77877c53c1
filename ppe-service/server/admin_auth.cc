#include "ppe-service/server/admin_auth.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/config/validators.h"

namespace ppe::server {
namespace {

using ppe::config::v1::AdminAuth;
using ppe::config::v1::PpeConfig;

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::StatusOr<AdminAuthorizer::Mode> ParseMode(absl::string_view mode) {
  if (mode.empty() || mode == "none") return AdminAuthorizer::Mode::kNone;
  if (mode == "token") return AdminAuthorizer::Mode::kToken;
  if (mode == "mtls") return AdminAuthorizer::Mode::kMtls;
  return FieldError("admin_auth.mode",
                    absl::StrCat("unknown mode '", mode, "' (expected none, token or mtls)"));
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& field, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return FieldError(field, absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty()) return FieldError(field, absl::StrCat(path, " is empty"));
  return ss.str();
}

// PEM material is parsed here so a wrong file is named at start-up rather than
// surfacing as a failed TLS handshake later.
absl::Status CheckPem(const std::string& field, const std::string& path, const std::string& pem,
                      bool private_key) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  bool ok = false;
  if (private_key) {
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    ok = key != nullptr;
    EVP_PKEY_free(key);
  } else {
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    ok = cert != nullptr;
    X509_free(cert);
  }
  BIO_free(bio);
  if (ok) return absl::OkStatus();
  return FieldError(
      field, absl::StrCat(path, " holds no PEM ", private_key ? "private key" : "certificate"));
}

absl::Status CheckKeyMatchesCert(const std::string& cert_pem, const std::string& key_pem) {
  BIO* cbio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  BIO* kbio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  X509* cert = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio, nullptr, nullptr, nullptr);
  bool match = cert != nullptr && key != nullptr && X509_check_private_key(cert, key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  BIO_free(cbio);
  BIO_free(kbio);
  if (match) return absl::OkStatus();
  return FieldError("admin_auth.tls_key_file", "does not match the certificate in tls_cert_file");
}

absl::StatusOr<std::vector<std::string>> ReadTokens(const std::string& path) {
  constexpr absl::string_view kField = "admin_auth.token_file";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return FieldError(kField, absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return FieldError(kField, absl::StrCat(path, " is not a file"));
  if ((st.st_mode & 077) != 0) {
    return FieldError(kField, absl::StrFormat("%s is accessible by group or others (mode %04o); "
                                              "chmod 600 it",
                                              path, st.st_mode & 07777));
  }
  PPE_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(std::string(kField), path));
  std::vector<std::string> tokens;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    if (line.size() < AdminAuthorizer::kMinTokenChars) {
      return FieldError(kField, absl::StrCat(path, ":", line_no, ": token shorter than ",
                                             AdminAuthorizer::kMinTokenChars, " characters"));
    }
    for (char ch : line) {
      if (!absl::ascii_isgraph(static_cast<unsigned char>(ch))) {
        return FieldError(kField, absl::StrCat(path, ":", line_no,
                                               ": token has a space or a non-printable character"));
      }
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) return FieldError(kField, absl::StrCat(path, " holds no token"));
  return tokens;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdminAuthorizer>> AdminAuthorizer::Create(const PpeConfig& config) {
  PPE_RETURN_IF_ERROR(config::CheckAdminAuth(config, ""));
  const AdminAuth& a = config.admin_auth();
  std::unique_ptr<AdminAuthorizer> auth(new AdminAuthorizer());
  auth->mode_ = *ParseMode(a.mode());
  if (auth->mode_ == Mode::kToken) {
    PPE_ASSIGN_OR_RETURN(std::vector<std::string> tokens, ReadTokens(a.token_file()));
    for (const auto& t : tokens) auth->token_digests_.push_back(Sha256(t));
  }
  if (!a.tls_cert_file().empty()) {
    PPE_ASSIGN_OR_RETURN(std::string cert,
                         ReadWholeFile("admin_auth.tls_cert_file", a.tls_cert_file()));
    PPE_ASSIGN_OR_RETURN(std::string key,
                         ReadWholeFile("admin_auth.tls_key_file", a.tls_key_file()));
    if (absl::Status s = CheckPem("admin_auth.tls_cert_file", a.tls_cert_file(), cert, false);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckPem("admin_auth.tls_key_file", a.tls_key_file(), key, true);
        !s.ok()) {
      return s;
    }
    PPE_RETURN_IF_ERROR(CheckKeyMatchesCert(cert, key));
    struct stat st;
    if (stat(a.tls_key_file().c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      spdlog::warn("admin_auth.tls_key_file {} is accessible by group or others; chmod 600 it",
                   a.tls_key_file());
    }
    auth->cert_pem_ = std::move(cert);
    auth->key_pem_ = std::move(key);
  }
  if (auth->mode_ == Mode::kMtls) {
    PPE_ASSIGN_OR_RETURN(std::string ca,
                         ReadWholeFile("admin_auth.client_ca_file", a.client_ca_file()));
    if (absl::Status s = CheckPem("admin_auth.client_ca_file", a.client_ca_file(), ca, false);
        !s.ok()) {
      return s;
    }
    auth->client_ca_pem_ = std::move(ca);
    for (const auto& n : a.allowed_client_names()) auth->allowed_names_.insert(n);
  }
  return auth;
}

std::unique_ptr<AdminAuthorizer> AdminAuthorizer::ForTokens(
    const std::vector<std::string>& tokens) {
  std::unique_ptr<AdminAuthorizer> auth(new AdminAuthorizer());
  auth->mode_ = Mode::kToken;
  for (const auto& t : tokens) auth->token_digests_.push_back(Sha256(t));
  return auth;
}

std::unique_ptr<AdminAuthorizer> AdminAuthorizer::ForClientNames(
    const std::vector<std::string>& names) {
  std::unique_ptr<AdminAuthorizer> auth(new AdminAuthorizer());
  auth->mode_ = Mode::kMtls;
  for (const auto& n : names) auth->allowed_names_.insert(n);
  return auth;
}

absl::string_view AdminAuthorizer::mode_name() const {
  switch (mode_) {
    case Mode::kToken:
      return "token";
    case Mode::kMtls:
      return "mtls";
    case Mode::kNone:
      break;
  }
  return "none";
}

AdminAuthorizer::Digest AdminAuthorizer::Sha256(absl::string_view s) {
  Digest d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

std::shared_ptr<grpc::ServerCredentials> AdminAuthorizer::ServerCredentials() const {
  if (cert_pem_.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      mode_ == Mode::kMtls ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_root_certs = client_ca_pem_;
  options.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(options);
}

grpc::Status AdminAuthorizer::AuthorizeToken(absl::string_view authorization) const {
  if (authorization.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "admin token required (authorization: Bearer <token>)");
  }
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "authorization metadata is not 'Bearer <token>'");
  }
  // Digests of equal length compared in constant time, against every token:
  // the time taken says nothing about the token's length or content.
  Digest presented = Sha256(absl::StripAsciiWhitespace(authorization.substr(kScheme.size())));
  int matches = 0;
  for (const Digest& d : token_digests_) {
    matches |= CRYPTO_memcmp(d.data(), presented.data(), d.size()) == 0;
  }
  if (matches == 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid admin token");
  }
  return grpc::Status::OK;
}

grpc::Status AdminAuthorizer::AuthorizePeer(const grpc::AuthContext* auth) const {
  if (auth == nullptr || !auth->IsPeerAuthenticated()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no verified client certificate");
  }
  std::vector<grpc::string_ref> names = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (names.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "client certificate has no common name");
  }
  std::string name(names.front().data(), names.front().size());
  if (!allowed_names_.empty() && !allowed_names_.contains(name)) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("client certificate '", name, "' is not in admin_auth.allowed_client_names"));
  }
  return grpc::Status::OK;
}

grpc::Status AdminAuthorizer::Authorize(const grpc::ServerContextBase& context) const {
  grpc::Status status;
  switch (mode_) {
    case Mode::kNone:
      return grpc::Status::OK;
    case Mode::kToken: {
      const auto& md = context.client_metadata();
      auto it = md.find("authorization");
      absl::string_view value;
      if (it != md.end()) value = absl::string_view(it->second.data(), it->second.size());
      status = AuthorizeToken(value);
      break;
    }
    case Mode::kMtls:
      status = AuthorizePeer(context.auth_context().get());
      break;
  }
  if (!status.ok()) LogDenied(context, status);
  return status;
}

void AdminAuthorizer::LogDenied(const grpc::ServerContextBase& context,
                                const grpc::Status& status) const {
  // At most one line a second, so a flood of bad calls cannot flood the log.
  uint64_t count = denials_.fetch_add(1) + 1;
  int64_t now = absl::GetCurrentTimeNanos();
  int64_t last = last_denial_log_ns_.load();
  if (now - last < 1'000'000'000 || !last_denial_log_ns_.compare_exchange_strong(last, now)) {
    return;
  }
  spdlog::warn("admin call refused ({} refusals so far): {} from {}", count, status.error_message(),
               context.peer());
}

}  // namespace ppe::server
