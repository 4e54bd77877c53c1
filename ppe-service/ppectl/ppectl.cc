// ppectl: the operators' command line for the PPE Admin service.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ppe-service/common/flags.h"
#include "ppe/v1/admin.grpc.pb.h"

namespace {

constexpr const char* kUsage =
    R"(usage: ppectl [--server ADDR] [--timeout-ms N] [auth options] COMMAND [--json]
commands:
  issue --service S --region R [--device D] [--tier T] [--time-bucket B] [--pattern P]
        attributes -> CPT and tagged hostname (registers the profile)
  update --cpt CPT --service S --region R [--device D] [--tier T] [--time-bucket B] [--pattern P]
        new attributes -> a new CPT; the old one is invalidated
  invalidate --cpt CPT  the CPT stops resolving; its VMs are released after its TTL
  profiles              list profiles
  profile --cpt CPT     one profile
  vms [--cpt CPT]       list VMs
  status                registry and hypervisor counts (they should agree); replicas:
                        leader, members, watch; says when etcd is unreachable
  drain --vm NAME       stop answering a VM; it is destroyed after the drain time
  limits --cpt CPT --service S --min N [--max N]
                        bounds the scaler keeps the profile's pool within
  forecast --cpt CPT --service S
                        recent demand, model, forecast and interval, pool size
  scale --cpt CPT --service S
                        let the scaler decide and act for this profile now
  report --cpt CPT --service S --requests N
                        add requests seen at the edge to the profile's demand
  health                grpc.health.v1 status of ADDR: SERVING (exit 0), or NOT_SERVING
                        while ppe-server restores its VMs at start (exit 1)
  methods               list the Admin service's methods
  call --method M       call Admin.M with an empty request and print the status: checks
                        access to every method (an authorized call does what M does)
auth options (admin_auth in ppe.conf):
  --token-file F        send the first token in F ("Bearer" metadata); default $PPE_TOKEN
  --tls-ca F            TLS, verifying the server with the CA certificates in F
  --tls-cert F --tls-key F
                        TLS client certificate and key (admin_auth.mode "mtls")
  --tls-server-name N   name to verify in the server certificate (default: ADDR's host)
ADDR defaults to $PPE_SERVER or 127.0.0.1:50051.
)";

struct Args {
  std::string server;
  int timeout_ms = 5000;
  std::string token_file, tls_ca, tls_cert, tls_key, tls_server_name;
  std::string command;
  std::map<std::string, std::string> options;
  bool json = false;
};

bool ParseArgs(int argc, char** argv, Args& args, std::string& error) {
  const char* env = std::getenv("PPE_SERVER");
  args.server = env ? env : "127.0.0.1:50051";
  ppe::FlagParser flags;
  flags.String("server", &args.server);
  flags.Int("timeout-ms", &args.timeout_ms);
  flags.String("token-file", &args.token_file);
  flags.String("tls-ca", &args.tls_ca);
  flags.String("tls-cert", &args.tls_cert);
  flags.String("tls-key", &args.tls_key);
  flags.String("tls-server-name", &args.tls_server_name);
  flags.Switch("json", &args.json);
  flags.Others(&args.options);  // the command's own options
  flags.Positionals([&args](absl::string_view a) {
    if (!args.command.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", a, "'"));
    }
    args.command = std::string(a);
    return absl::OkStatus();
  });
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    error = std::string(s.message());
  } else if (args.command.empty()) {
    error = "no command";
  } else if (args.tls_cert.empty() != args.tls_key.empty()) {
    error = "--tls-cert and --tls-key go together";
  }
  return error.empty();
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

std::string FormatMillis(int64_t ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

// "ppectl: UNAUTHENTICATED: invalid admin token" on stderr; exit status 1.
int Fail(const grpc::Status& s) {
  std::fprintf(stderr, "ppectl: %s: %s\n", CodeName(s.error_code()), s.error_message().c_str());
  return 1;
}

int FailLocal(const std::string& message) {
  std::fprintf(stderr, "ppectl: %s\n", message.c_str());
  return 1;
}

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// The first token of a token file: its first line that is neither blank nor a '#' comment.
bool ReadToken(const std::string& path, std::string& token) {
  std::string text;
  if (!ReadFile(path, text)) return false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    token = std::string(line);
    return true;
  }
  return false;
}

// TLS when any --tls-* option is given, else an insecure channel.
bool MakeChannel(const Args& args, std::shared_ptr<grpc::Channel>& channel, std::string& error) {
  if (args.tls_ca.empty() && args.tls_cert.empty() && args.tls_server_name.empty()) {
    channel = grpc::CreateChannel(args.server, grpc::InsecureChannelCredentials());
    return true;
  }
  grpc::SslCredentialsOptions tls;
  for (auto [path, out] : {std::pair{&args.tls_ca, &tls.pem_root_certs},
                           std::pair{&args.tls_cert, &tls.pem_cert_chain},
                           std::pair{&args.tls_key, &tls.pem_private_key}}) {
    if (!path->empty() && !ReadFile(*path, *out)) {
      error = absl::StrCat("cannot read ", *path);
      return false;
    }
  }
  grpc::ChannelArguments channel_args;
  if (!args.tls_server_name.empty()) channel_args.SetSslTargetNameOverride(args.tls_server_name);
  channel = grpc::CreateCustomChannel(args.server, grpc::SslCredentials(tls), channel_args);
  return true;
}

// A unary call by method name with a serialized request (no generated stub).
grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext& ctx,
                     const std::string& method, const std::string& request_bytes,
                     std::string& response_bytes) {
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::Status status;
  absl::Notification done;
  grpc::GenericStub generic(channel);
  generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  std::vector<grpc::Slice> slices;
  if (status.ok() && response.Dump(&slices).ok()) {
    for (const grpc::Slice& part : slices) {
      response_bytes.append(reinterpret_cast<const char*>(part.begin()), part.size());
    }
  }
  return status;
}

// What every command runs with: the parsed arguments, the channel, and one call's
// context (deadline and credentials set).
struct Session {
  explicit Session(const Args& a) : args(a) {}

  const Args& args;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<ppe::v1::Admin::Stub> stub;
  grpc::ClientContext ctx;

  std::string opt(const char* name) const {
    auto it = args.options.find(name);
    return it == args.options.end() ? std::string() : it->second;
  }
  void FillAttributes(ppe::v1::Attributes* a) const {
    a->set_region(opt("region"));
    a->set_device_class(opt("device"));
    a->set_service_tier(opt("tier"));
    a->set_time_bucket(opt("time-bucket"));
    a->set_request_pattern(opt("pattern"));
  }
};

// A command line that is wrong: the message, the usage, exit status 2.
int Usage(const std::string& message) {
  std::fprintf(stderr, "ppectl: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// issue and update both answer with the (new) CPT and its hostname.
int PrintIssued(const Session& s, const grpc::Status& st, const ppe::v1::IssueCptResponse& resp) {
  if (!st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
  } else {
    std::cout << "cpt:         " << resp.cpt() << "\nhostname:    " << resp.hostname()
              << "\nfingerprint: " << resp.fingerprint()
              << "\ncreated:     " << (resp.created() ? "yes" : "no (existing profile)") << "\n";
  }
  return 0;
}

int Issue(Session& s) {
  ppe::v1::IssueCptRequest req;
  req.set_service(s.opt("service"));
  s.FillAttributes(req.mutable_attributes());
  if (req.service().empty() || req.attributes().region().empty()) {
    return Usage("issue needs --service and --region");
  }
  ppe::v1::IssueCptResponse resp;
  grpc::Status st = s.stub->IssueCpt(&s.ctx, req, &resp);
  return PrintIssued(s, st, resp);
}

int Update(Session& s) {
  ppe::v1::UpdateAttributesRequest req;
  req.set_cpt(s.opt("cpt"));
  req.set_service(s.opt("service"));
  s.FillAttributes(req.mutable_attributes());
  if (req.cpt().empty() || req.service().empty() || req.attributes().region().empty()) {
    return Usage("update needs --cpt, --service and --region");
  }
  ppe::v1::IssueCptResponse resp;
  grpc::Status st = s.stub->UpdateAttributes(&s.ctx, req, &resp);
  return PrintIssued(s, st, resp);
}

int Invalidate(Session& s) {
  ppe::v1::InvalidateProfileRequest req;
  req.set_cpt(s.opt("cpt"));
  if (req.cpt().empty()) return Usage("invalidate needs --cpt");
  ppe::v1::InvalidateProfileResponse resp;
  if (grpc::Status st = s.stub->InvalidateProfile(&s.ctx, req, &resp); !st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
  } else {
    std::cout << "invalidated; VMs to release after the TTL: " << resp.vms_to_release() << "\n";
  }
  return 0;
}

int Profiles(Session& s) {
  ppe::v1::ListProfilesResponse resp;
  if (grpc::Status st = s.stub->ListProfiles(&s.ctx, {}, &resp); !st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
    return 0;
  }
  std::cout << absl::StrFormat("%-32s %-9s %-10s %-8s %-6s %-20s %s\n", "CPT", "FPRINT", "REGION",
                               "DEVICE", "ORIGIN", "LAST SEEN", "VMS");
  for (const auto& p : resp.profiles()) {
    int vms = 0;
    for (const auto& pool : p.pools()) vms += pool.vm_names_size();
    std::cout << absl::StrFormat("%-32s %-9s %-10s %-8s %-6s %-20s %d\n", p.cpt(), p.fingerprint(),
                                 p.attributes().region(), p.attributes().device_class(), p.origin(),
                                 FormatMillis(p.last_seen_unix_ms()), vms);
  }
  return 0;
}

int ShowProfile(Session& s) {
  ppe::v1::GetProfileRequest req;
  req.set_cpt(s.opt("cpt"));
  ppe::v1::Profile resp;
  if (grpc::Status st = s.stub->GetProfile(&s.ctx, req, &resp); !st.ok()) return Fail(st);
  std::cout << ToJson(resp);
  return 0;
}

int Vms(Session& s) {
  ppe::v1::ListVmsRequest req;
  req.set_cpt(s.opt("cpt"));
  ppe::v1::ListVmsResponse resp;
  if (grpc::Status st = s.stub->ListVms(&s.ctx, req, &resp); !st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
    return 0;
  }
  std::cout << absl::StrFormat("%-24s %-8s %-10s %-13s %-16s %s\n", "NAME", "SERVICE", "CLASS",
                               "STATE", "IP", "PROFILE");
  for (const auto& vm : resp.vms()) {
    std::cout << absl::StrFormat("%-24s %-8s %-10s %-13s %-16s %s\n", vm.name(), vm.service(),
                                 vm.workload_class(), vm.state(), vm.ip(),
                                 vm.profile_fingerprint());
  }
  return 0;
}

int Drain(Session& s) {
  ppe::v1::DrainVmRequest req;
  req.set_name(s.opt("vm"));
  ppe::v1::DrainVmResponse resp;
  if (grpc::Status st = s.stub->DrainVm(&s.ctx, req, &resp); !st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
  } else {
    std::cout << "draining; released after " << FormatMillis(resp.release_after_unix_ms()) << "\n";
  }
  return 0;
}

// limits, forecast and scale all answer with the profile's ScalingView.
int PrintScaling(const Session& s, const grpc::Status& st, const ppe::v1::ScalingView& resp) {
  if (!st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
    return 0;
  }
  std::cout << "model " << resp.model() << ", lead " << resp.lead_buckets() << " buckets of "
            << resp.bucket_ms() << " ms\nVMs: " << resp.current_vms() << " now, "
            << resp.desired_vms() << " wanted (min " << resp.min_vms() << ", max " << resp.max_vms()
            << ")\nmean abs error " << resp.mean_abs_error() << "\nhistory:";
  for (double x : resp.history()) std::cout << " " << x;
  std::cout << "\nforecast (lower/mean/upper):";
  for (int i = 0; i < resp.mean_size(); ++i) {
    std::cout << absl::StrFormat(" %.0f/%.0f/%.0f", resp.lower(i), resp.mean(i), resp.upper(i));
  }
  std::cout << "\n";
  return 0;
}

int Limits(Session& s) {
  ppe::v1::SetProfileLimitsRequest req;
  req.set_cpt(s.opt("cpt"));
  req.set_service(s.opt("service"));
  req.set_min_vms(std::atoi(s.opt("min").c_str()));
  req.set_max_vms(std::atoi(s.opt("max").c_str()));
  ppe::v1::ScalingView resp;
  grpc::Status st = s.stub->SetProfileLimits(&s.ctx, req, &resp);
  return PrintScaling(s, st, resp);
}

ppe::v1::ScalingRequest ScalingRequestOf(const Session& s) {
  ppe::v1::ScalingRequest req;
  req.set_cpt(s.opt("cpt"));
  req.set_service(s.opt("service"));
  return req;
}

int Forecast(Session& s) {
  ppe::v1::ScalingView resp;
  grpc::Status st = s.stub->GetForecast(&s.ctx, ScalingRequestOf(s), &resp);
  return PrintScaling(s, st, resp);
}

int Scale(Session& s) {
  ppe::v1::ScalingView resp;
  grpc::Status st = s.stub->TriggerScale(&s.ctx, ScalingRequestOf(s), &resp);
  return PrintScaling(s, st, resp);
}

int Report(Session& s) {
  ppe::v1::ReportDemandRequest req;
  auto* e = req.add_entries();
  e->set_cpt(s.opt("cpt"));
  e->set_service(s.opt("service"));
  e->set_requests(std::atoll(s.opt("requests").c_str()));
  ppe::v1::ReportDemandResponse resp;
  if (grpc::Status st = s.stub->ReportDemand(&s.ctx, req, &resp); !st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
  } else {
    std::cout << "accepted " << resp.accepted() << " of " << req.entries_size() << "\n";
  }
  return 0;
}

int Methods(Session&) {
  const google::protobuf::ServiceDescriptor* admin =
      ppe::v1::IssueCptRequest::descriptor()->file()->FindServiceByName("Admin");
  for (int i = 0; admin != nullptr && i < admin->method_count(); ++i) {
    std::cout << admin->method(i)->name() << "\n";
  }
  return 0;
}

int Call(Session& s) {
  if (s.opt("method").empty()) return Usage("call needs --method");
  // Empty bytes are a valid encoding of every request message (all fields unset).
  std::string response;
  if (grpc::Status st = CallRaw(s.channel, s.ctx, "/ppe.v1.Admin/" + s.opt("method"), "", response);
      !st.ok()) {
    return Fail(st);
  }
  std::cout << "OK\n";
  return 0;
}

int Health(Session& s) {
  // HealthCheckRequest{service: ""} is empty; HealthCheckResponse is field 1,
  // a varint: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING (grpc/health/v1/health.proto).
  std::string response;
  if (grpc::Status st = CallRaw(s.channel, s.ctx, "/grpc.health.v1.Health/Check", "", response);
      !st.ok()) {
    return Fail(st);
  }
  const int code = response.size() == 2 && response[0] == 0x08 ? response[1] : 0;
  const char* names[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  std::cout << (code >= 0 && code <= 3 ? names[code] : "UNKNOWN") << "\n";
  return code == 1 ? 0 : 1;
}

int ShowStatus(Session& s) {
  ppe::v1::StatusResponse resp;
  if (grpc::Status st = s.stub->GetStatus(&s.ctx, {}, &resp); !st.ok()) return Fail(st);
  if (s.args.json) {
    std::cout << ToJson(resp);
    return 0;
  }
  std::cout << "registry " << resp.registry_instance() << ", hypervisor " << resp.hypervisor_uri()
            << "\nprofiles: " << resp.profiles() << " (" << resp.active_profiles()
            << " active)\nVMs in the registry: " << resp.vms()
            << "\ndomains on the hypervisor: " << resp.hypervisor_domains() << " ("
            << resp.hypervisor_running()
            << " running)\nallocations in flight: " << resp.inflight_allocations() << "\n";
  for (const auto& [state, n] : resp.vms_by_state()) {
    std::cout << "  " << state << ": " << n << "\n";
  }
  for (const auto& x : resp.exhaustion()) {
    std::cout << "limit " << x.limit() << " of service " << x.service() << ": " << x.refusals()
              << " refusals" << (x.exhausted() ? ", EXHAUSTED" : "") << "\n";
  }
  std::cout << "scaler budget " << resp.scaler_budget() << " VMs: denied "
            << resp.scaler_budget_denied_last() << " in the last bucket, "
            << resp.scaler_budget_denied_total() << " in all\n";
  if (!resp.replica_id().empty()) {
    const bool stale = resp.cluster_view_stale();
    if (resp.etcd_unreachable_since_unix_ms() != 0) {
      std::cout << "ETCD UNREACHABLE since " << FormatMillis(resp.etcd_unreachable_since_unix_ms())
                << " (" << resp.etcd_error()
                << "): registrations and allocations of new profiles stop; "
                << "answers come from this replica's index or the fallback\n";
    }
    std::cout << "replica " << resp.replica_id() << ": index " << resp.profiles()
              << " profiles, watch applied revision " << resp.watched_revision()
              << (resp.etcd_unreachable_since_unix_ms() != 0 ? " (not advancing: etcd unreachable)"
                                                             : "")
              << "\nleader " << (resp.leader().empty() ? "(none)" : resp.leader())
              << (stale ? absl::StrCat(" (STALE: last read ",
                                       resp.cluster_view_unix_ms() == 0
                                           ? std::string("never")
                                           : FormatMillis(resp.cluster_view_unix_ms()),
                                       ")")
                        : "")
              << "; fenced writes refused " << resp.fenced_refusals() << "\nreplicas"
              << (stale ? " (stale)" : "") << " (" << resp.replicas_size() << "):\n";
    for (const auto& r : resp.replicas()) {
      std::cout << "  " << r.id() << " at " << r.address() << (r.leader() ? " LEADER" : "")
                << ": watch applied revision " << r.watched_revision() << ", watch lag "
                << r.watch_lag_ms() << " ms\n";
    }
  }
  return 0;
}

struct Command {
  const char* name;
  int (*run)(Session&);
};

// The commands, as kUsage lists them.
constexpr Command kCommands[] = {
    {"issue", Issue},       {"update", Update},       {"invalidate", Invalidate},
    {"profiles", Profiles}, {"profile", ShowProfile}, {"vms", Vms},
    {"status", ShowStatus}, {"drain", Drain},         {"limits", Limits},
    {"forecast", Forecast}, {"scale", Scale},         {"report", Report},
    {"health", Health},     {"methods", Methods},     {"call", Call},
};

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, args, error)) return Usage(error);
  const Command* command = nullptr;
  for (const Command& c : kCommands) {
    if (args.command == c.name) command = &c;
  }
  if (command == nullptr) return Usage(absl::StrCat("unknown command '", args.command, "'"));

  Session session(args);
  if (!MakeChannel(args, session.channel, error)) return FailLocal(error);
  session.stub = ppe::v1::Admin::NewStub(session.channel);
  session.ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(args.timeout_ms));
  std::string token;
  if (!args.token_file.empty()) {
    if (!ReadToken(args.token_file, token)) {
      return FailLocal(absl::StrCat("no token in ", args.token_file));
    }
  } else if (const char* env = std::getenv("PPE_TOKEN"); env != nullptr && *env != '\0') {
    token = env;
  }
  if (!token.empty()) session.ctx.AddMetadata("authorization", "Bearer " + token);
  return command->run(session);
}
