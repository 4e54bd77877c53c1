// Prints what the etcd store costs next to SQLite, on a real etcd (Debian
// etcd-server, started here on loopback, fsync on). No assertions.
//
//   etcd_store_bench [seconds per run, default 2] [profiles, default 100000]...
//
//  1. Registrations: commits/s of the registry's registration transaction
//     (create-if-absent of one ~120-byte Profile record), SQLite vs etcd of 1
//     and 3 members, from 1 and 16 threads.
//  2. Loading a replica: for each profile count, the profiles are written to
//     a 1-member etcd (batches of 100 per Txn, 8 threads), then a fresh
//     Registry loads them through EtcdRegistryStore: load time and the RSS the
//     process grew by (the index, plus what the allocator kept of the listed
//     records).

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "ppe-service/store/sqlite_registry_store.h"
#include "ppe/registry/v1/records.pb.h"
#include "tests/store/etcd_cluster.h"
#include "tests/store/store_test_util.h"

namespace {

using ppe::store::EtcdRegistryStore;
using ppe::store::RegistryStore;

std::string ProfileValue(const std::string& cpt) {
  ppe::registry::v1::Profile p;
  p.set_cpt(cpt);
  p.mutable_attributes()->set_region("eu-west");
  p.mutable_attributes()->set_device_class("tv");
  p.mutable_attributes()->set_service_tier("premium");
  p.mutable_attributes()->set_time_bucket("evening");
  p.set_origin("dns");
  p.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  p.set_last_seen_unix_ms(absl::ToUnixMillis(absl::Now()));
  return p.SerializeAsString();
}

std::string Cpt(int thread, int64_t i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "t%02dx%020lld", thread, static_cast<long long>(i));
  return buf;
}

double Registrations(RegistryStore& store, int threads, absl::Duration duration, int run) {
  std::atomic<int64_t> commits{0};
  std::atomic<bool> failed{false};
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int64_t i = 0; absl::Now() < end; ++i) {
        const std::string cpt = Cpt(t, i) + "r" + std::to_string(run);
        const std::string key = "/ppe/profiles/" + cpt;
        ppe::store::Txn txn{.compares = {ppe::store::Compare::Absent(key)},
                            .success = {ppe::store::Op::Put(key, ProfileValue(cpt))}};
        auto r = store.Txn(txn);
        if (!r.ok() || !r->succeeded) {
          failed = true;
          return;
        }
        commits.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  if (failed) std::fprintf(stderr, "a registration failed\n");
  return commits.load() / absl::ToDoubleSeconds(absl::Now() - start);
}

int64_t RssKib() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

std::unique_ptr<EtcdRegistryStore> Connect(const ppe::store::testing::EtcdCluster& cluster) {
  EtcdRegistryStore::Options options;
  options.endpoints = cluster.Endpoints();
  options.timeout = absl::Seconds(60);
  auto store = EtcdRegistryStore::Connect(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*store);
}

// Writes `n` profiles in batches; returns seconds.
double Fill(RegistryStore& store, int64_t n) {
  constexpr int kThreads = 8;
  constexpr int kBatch = 100;  // etcd's --max-txn-ops is 128
  const absl::Time start = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int64_t first = t * kBatch; first < n; first += kThreads * kBatch) {
        ppe::store::Txn txn;
        for (int64_t i = first; i < std::min<int64_t>(first + kBatch, n); ++i) {
          const std::string cpt = Cpt(99, i);
          txn.success.push_back(ppe::store::Op::Put("/ppe/profiles/" + cpt, ProfileValue(cpt)));
        }
        if (!store.Txn(txn).ok()) {
          std::fprintf(stderr, "fill failed\n");
          std::exit(1);
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  return absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const absl::Duration duration = absl::Seconds(seconds > 0 ? seconds : 2.0);
  std::vector<int64_t> counts;
  for (int i = 2; i < argc; ++i) counts.push_back(std::atoll(argv[i]));
  if (counts.empty()) counts.push_back(100000);

  ppe::store::testing::TempDir dir;
  std::printf("registrations (create-if-absent Txn of one profile record)\n");
  std::printf("%-34s %12s %12s\n", "store", "x1, /s", "x16, /s");
  {
    auto sqlite = ppe::store::SqliteRegistryStore::Open(dir.path() + "/bench.db");
    if (!sqlite.ok()) return 1;
    std::printf("%-34s %12.0f %12.0f\n", "sqlite (WAL, synchronous=FULL)",
                Registrations(**sqlite, 1, duration, 0), Registrations(**sqlite, 16, duration, 1));
  }
  for (int members : {1, 3}) {
    const std::string sub = dir.path() + "/reg" + std::to_string(members);
    std::filesystem::create_directories(sub);
    auto cluster = ppe::store::testing::EtcdCluster::Start(members, sub);
    if (!cluster.ok()) {
      std::fprintf(stderr, "%s\n", cluster.status().ToString().c_str());
      return 1;
    }
    auto store = Connect(**cluster);
    std::printf("%-34s %12.0f %12.0f\n",
                ("etcd 3.4, " + std::to_string(members) + " member(s), loopback").c_str(),
                Registrations(*store, 1, duration, 0), Registrations(*store, 16, duration, 1));
  }

  std::printf("\nloading a replica's registry index from etcd (1 member)\n");
  std::printf("%-12s %10s %10s %12s %12s\n", "profiles", "write, s", "load, s", "RSS +MiB",
              "B/profile");
  for (int64_t n : counts) {
    const std::string sub = dir.path() + "/load" + std::to_string(n);
    std::filesystem::create_directories(sub);
    auto cluster = ppe::store::testing::EtcdCluster::Start(1, sub);
    if (!cluster.ok()) return 1;
    double write_s;
    {
      auto writer = Connect(**cluster);
      write_s = Fill(*writer, n);
    }
    auto store = Connect(**cluster);
    const int64_t before = RssKib();
    const absl::Time start = absl::Now();
    auto registry = std::make_unique<ppe::registry::Registry>(*store);
    if (absl::Status s = registry->Load(); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    const double load_s = absl::ToDoubleSeconds(absl::Now() - start);
    const int64_t grown = RssKib() - before;
    std::printf("%-12lld %10.1f %10.2f %12.1f %12.0f\n", static_cast<long long>(n), write_s, load_s,
                grown / 1024.0, grown * 1024.0 / static_cast<double>(n));
    std::fflush(stdout);
  }
  return 0;
}
