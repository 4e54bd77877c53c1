// Issues N profiles through Admin.IssueCpt (8 calls in flight) and prints one
// hostname a line: the tagged names dns_bench.py measures.
//   issue_many TARGET N [service]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "ppe/v1/admin.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: issue_many TARGET N [service]\n");
    return 2;
  }
  int n = std::atoi(argv[2]);
  std::string service = argc > 3 ? argv[3] : "video";
  auto stub =
      ppe::v1::Admin::NewStub(grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()));
  std::vector<std::string> names(n);
  std::vector<std::thread> pool;
  std::atomic<int> failed{0};
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&, t] {
      for (int i = t; i < n; i += 8) {
        ppe::v1::IssueCptRequest req;
        req.set_service(service);
        req.mutable_attributes()->set_region("bench");
        req.mutable_attributes()->set_device_class("d" + std::to_string(i));
        ppe::v1::IssueCptResponse resp;
        grpc::ClientContext ctx;
        if (stub->IssueCpt(&ctx, req, &resp).ok()) {
          names[i] = resp.hostname();
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (const auto& name : names) {
    if (!name.empty()) std::printf("%s\n", name.c_str());
  }
  return failed == 0 ? 0 : 1;
}
