#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::server {

// Who may call the Admin service, as configured by `admin_auth`:
//   "none"  everyone (loopback or a trusted network only);
//   "token" `authorization: Bearer <token>` metadata matching a line of token_file;
//   "mtls"  a client certificate signed by client_ca_file (checked by the TLS
//           handshake) whose common name is in allowed_client_names (empty: any).
// Built once at start-up; Authorize is thread-safe and does no I/O.
class AdminAuthorizer {
 public:
  enum class Mode { kNone, kToken, kMtls };
  static constexpr size_t kMinTokenChars = 16;

  // Checks the section (config::CheckAdminAuth), then reads the token file (which must not be
  // accessible by group or others) and the PEM files. Creates nothing.
  static absl::StatusOr<std::unique_ptr<AdminAuthorizer>> Create(
      const ppe::config::v1::PpeConfig& config);
  // For tests: token mode with these tokens, no TLS.
  static std::unique_ptr<AdminAuthorizer> ForTokens(const std::vector<std::string>& tokens);
  // For tests: mtls mode accepting these common names (empty: any), no PEM material.
  static std::unique_ptr<AdminAuthorizer> ForClientNames(const std::vector<std::string>& names);

  Mode mode() const { return mode_; }
  bool tls() const { return !cert_pem_.empty(); }
  absl::string_view mode_name() const;

  // Credentials of the port the Admin service listens on: TLS (requiring and
  // verifying a client certificate in "mtls") when a certificate is configured,
  // else insecure.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;

  // OK; UNAUTHENTICATED (no or unknown token, no verified client certificate);
  // PERMISSION_DENIED (a verified certificate whose name is not allowed).
  // Denials are logged (rate-limited) with the peer address, never the token.
  grpc::Status Authorize(const grpc::ServerContextBase& context) const;

  // The two checks behind Authorize, for tests.
  // `authorization` is the value of the `authorization` metadata (empty if none).
  grpc::Status AuthorizeToken(absl::string_view authorization) const;
  grpc::Status AuthorizePeer(const grpc::AuthContext* auth) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  AdminAuthorizer() = default;
  static Digest Sha256(absl::string_view s);
  void LogDenied(const grpc::ServerContextBase& context, const grpc::Status& status) const;

  Mode mode_ = Mode::kNone;
  std::vector<Digest> token_digests_;  // SHA-256 of each accepted token
  absl::flat_hash_set<std::string> allowed_names_;
  std::string cert_pem_, key_pem_, client_ca_pem_;
  mutable std::atomic<int64_t> last_denial_log_ns_{0};
  mutable std::atomic<uint64_t> denials_{0};
};

}  // namespace ppe::server
