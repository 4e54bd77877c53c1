// ppectl: the operators' command line for the PPE Admin service.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "ppe/v1/admin.grpc.pb.h"

namespace {

constexpr const char* kUsage = R"(usage: ppectl [--server ADDR] [--timeout-ms N] COMMAND [--json]
commands:
  issue --service S --region R [--device D] [--tier T] [--time-bucket B] [--pattern P]
        attributes -> CPT and tagged hostname (registers the profile)
  profiles              list profiles
  profile --cpt CPT     one profile
  vms [--cpt CPT]       list VMs
ADDR defaults to $PPE_SERVER or 127.0.0.1:50051.
)";

struct Args {
  std::string server;
  int timeout_ms = 5000;
  std::string command;
  std::map<std::string, std::string> options;
  bool json = false;
};

bool ParseArgs(int argc, char** argv, Args& args, std::string& error) {
  const char* env = std::getenv("PPE_SERVER");
  args.server = env ? env : "127.0.0.1:50051";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      args.json = true;
    } else if (a.rfind("--", 0) == 0) {
      if (i + 1 >= argc) {
        error = absl::StrCat(a, " needs a value");
        return false;
      }
      std::string value = argv[++i];
      if (a == "--server") {
        args.server = value;
      } else if (a == "--timeout-ms") {
        args.timeout_ms = std::atoi(value.c_str());
      } else {
        args.options[a.substr(2)] = value;
      }
    } else if (args.command.empty()) {
      args.command = a;
    } else {
      error = absl::StrCat("unexpected argument '", a, "'");
      return false;
    }
  }
  if (args.command.empty()) error = "no command";
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

int Fail(const grpc::Status& s) {
  std::fprintf(stderr, "ppectl: %s\n", s.error_message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, args, error)) {
    std::fprintf(stderr, "ppectl: %s\n%s", error.c_str(), kUsage);
    return 2;
  }
  auto channel = grpc::CreateChannel(args.server, grpc::InsecureChannelCredentials());
  auto stub = ppe::v1::Admin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(args.timeout_ms));
  auto opt = [&](const char* name) {
    auto it = args.options.find(name);
    return it == args.options.end() ? std::string() : it->second;
  };

  if (args.command == "issue") {
    ppe::v1::IssueCptRequest req;
    req.set_service(opt("service"));
    auto* a = req.mutable_attributes();
    a->set_region(opt("region"));
    a->set_device_class(opt("device"));
    a->set_service_tier(opt("tier"));
    a->set_time_bucket(opt("time-bucket"));
    a->set_request_pattern(opt("pattern"));
    if (req.service().empty() || a->region().empty()) {
      std::fprintf(stderr, "ppectl: issue needs --service and --region\n%s", kUsage);
      return 2;
    }
    ppe::v1::IssueCptResponse resp;
    if (grpc::Status s = stub->IssueCpt(&ctx, req, &resp); !s.ok()) return Fail(s);
    if (args.json) {
      std::cout << ToJson(resp);
    } else {
      std::cout << "cpt:         " << resp.cpt() << "\nhostname:    " << resp.hostname()
                << "\nfingerprint: " << resp.fingerprint()
                << "\ncreated:     " << (resp.created() ? "yes" : "no (existing profile)") << "\n";
    }
  } else if (args.command == "profiles") {
    ppe::v1::ListProfilesResponse resp;
    if (grpc::Status s = stub->ListProfiles(&ctx, {}, &resp); !s.ok()) return Fail(s);
    if (args.json) {
      std::cout << ToJson(resp);
    } else {
      std::cout << absl::StrFormat("%-32s %-9s %-10s %-8s %-6s %-20s %s\n", "CPT", "FPRINT",
                                   "REGION", "DEVICE", "ORIGIN", "LAST SEEN", "VMS");
      for (const auto& p : resp.profiles()) {
        int vms = 0;
        for (const auto& pool : p.pools()) vms += pool.vm_names_size();
        std::cout << absl::StrFormat("%-32s %-9s %-10s %-8s %-6s %-20s %d\n", p.cpt(),
                                     p.fingerprint(), p.attributes().region(),
                                     p.attributes().device_class(), p.origin(),
                                     FormatMillis(p.last_seen_unix_ms()), vms);
      }
    }
  } else if (args.command == "profile") {
    ppe::v1::GetProfileRequest req;
    req.set_cpt(opt("cpt"));
    ppe::v1::Profile resp;
    if (grpc::Status s = stub->GetProfile(&ctx, req, &resp); !s.ok()) return Fail(s);
    std::cout << ToJson(resp);
  } else if (args.command == "vms") {
    ppe::v1::ListVmsRequest req;
    req.set_cpt(opt("cpt"));
    ppe::v1::ListVmsResponse resp;
    if (grpc::Status s = stub->ListVms(&ctx, req, &resp); !s.ok()) return Fail(s);
    if (args.json) {
      std::cout << ToJson(resp);
    } else {
      std::cout << absl::StrFormat("%-24s %-8s %-10s %-13s %-16s %s\n", "NAME", "SERVICE", "CLASS",
                                   "STATE", "IP", "PROFILE");
      for (const auto& vm : resp.vms()) {
        std::cout << absl::StrFormat("%-24s %-8s %-10s %-13s %-16s %s\n", vm.name(), vm.service(),
                                     vm.workload_class(), vm.state(), vm.ip(),
                                     vm.profile_fingerprint());
      }
    }
  } else {
    std::fprintf(stderr, "ppectl: unknown command '%s'\n%s", args.command.c_str(), kUsage);
    return 2;
  }
  return 0;
}
