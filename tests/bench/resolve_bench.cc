// Latency of the plugin's hop: Resolve calls against a running ppe-server,
// from 1..N threads, with ListZones (no work behind it) as the reference.
//   resolve_bench TARGET QNAME [seconds]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "ppe/v1/resolver.grpc.pb.h"

namespace {

template <typename Call>
void Run(const char* what, int threads, double seconds, Call call) {
  std::atomic<long> calls{0}, errors{0};
  auto stop = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      while (std::chrono::steady_clock::now() < stop) {
        if (call())
          calls.fetch_add(1);
        else
          errors.fetch_add(1);
      }
    });
  }
  for (auto& t : pool) t.join();
  double per_s = calls / seconds;
  std::printf("  %-10s threads %2d: %8.0f calls/s, %7.1f us/call per thread, %ld errors\n", what,
              threads, per_s, threads * 1e6 / per_s, errors.load());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: resolve_bench TARGET QNAME [seconds]\n");
    return 2;
  }
  double seconds = argc > 3 ? std::atof(argv[3]) : 3;
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  auto stub = ppe::v1::Resolver::NewStub(channel);
  ppe::v1::ResolveRequest req;
  req.set_qname(argv[2]);
  req.set_qtype("A");
  req.set_remote("127.0.0.1");
  req.set_real_remote("127.0.0.1/32");
  auto resolve = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    ppe::v1::ResolveResponse resp;
    return stub->Resolve(&ctx, req, &resp).ok() && resp.records_size() > 0;
  };
  auto zones = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    ppe::v1::ListZonesResponse resp;
    return stub->ListZones(&ctx, {}, &resp).ok();
  };
  std::printf("gRPC hop to %s (%s)\n", argv[1], argv[2]);
  for (int threads : {1, 3, 8}) {
    Run("ListZones", threads, seconds, zones);
    Run("Resolve", threads, seconds, resolve);
  }
  return 0;
}
