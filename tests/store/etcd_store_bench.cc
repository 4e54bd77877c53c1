// Prints what the etcd store costs next to SQLite, on a real etcd (Debian
// etcd-server, started here on loopback, fsync on). No assertions.
//
//   etcd_store_bench [seconds per registration run, default 2; 0 skips]
//                    [seconds of the watch-lag run, default 10; 0 skips]
//                    [profiles to load, default 100000]...
//
//  1. Registrations: commits/s of the registry's registration transaction
//     (create-if-absent of one ~120-byte Profile record), SQLite vs etcd of 1
//     and 3 members, from 1 and 16 threads.
//  2. Watch lag: a follower replica (Registry::Load + Follow on its own
//     connection) while other clients register profiles through their own
//     Registries (16, each on its own connection) at a steady 1 000/s in all
//     (1-member etcd): lag = the writer's RegisterProfile returned -> the
//     follower's index applied it (0 when the watch came first); and, for
//     scale, RegisterProfile called -> applied.
//  3. Loading a replica: for each profile count, CPT-shaped profiles are
//     written to a 1-member etcd (batches of 100 per Txn, 8 threads), then a
//     fresh process (this program, --load) runs Registry::Load through
//     EtcdRegistryStore: load time, and the RSS it grew by at the end and at
//     its peak (the index, plus what the allocator kept of the listed pages),
//     and the CPU seconds the load took in this process and in etcd (the
//     machine may be shared); then the same ListPages again into nothing
//     ("list s": the store's part of the load time).

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
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

// A CPT-shaped tag for profile i: version char, then 25 lowercase base32
// characters of a pseudo-random digest (what registry keys look like).
std::string CptShaped(int64_t i) {
  static constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
  uint64_t x = static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
  std::string out = "a";
  for (int c = 0; c < 25; ++c) {
    if (c % 12 == 0) {  // splitmix64 step: 12 characters per 60 bits
      x += 0x9e3779b97f4a7c15ULL;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      x = z ^ (z >> 31);
    }
    out += kBase32[(x >> (5 * (c % 12))) & 31];
  }
  return out;
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
          const std::string cpt = CptShaped(i);
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

int64_t PeakRssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return 0;
}

// CPU seconds (user + system) of this process, or of process `pid`.
double CpuSeconds(pid_t pid = 0) {
  if (pid == 0) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 1; i <= 13 && rest >> field; ++i) {
    if (i >= 12) ticks += std::atof(field.c_str());
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// --load <endpoint> <etcd pid>: the replica side of (3), in a fresh process.
// Prints "<profiles> <load s> <RSS growth KiB> <peak RSS growth KiB> <list s>
// <replica CPU s> <etcd CPU s>" (the CPU seconds of the load).
int LoadMain(const std::string& endpoint, pid_t etcd) {
  EtcdRegistryStore::Options options;
  options.endpoints = {endpoint};
  options.timeout = absl::Seconds(60);
  auto store = EtcdRegistryStore::Connect(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  const int64_t before = RssKib();
  const double cpu_before = CpuSeconds();
  const double etcd_before = CpuSeconds(etcd);
  const absl::Time start = absl::Now();
  auto registry = std::make_unique<ppe::registry::Registry>(**store);
  if (absl::Status s = registry->Load(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const double load_s = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu_s = CpuSeconds() - cpu_before;
  const double etcd_s = CpuSeconds(etcd) - etcd_before;
  const int64_t grown = RssKib() - before;
  const int64_t peak = PeakRssKib() - before;
  // The store's part of it: the same listing again, into nothing.
  const absl::Time list_start = absl::Now();
  int64_t listed = 0;
  auto count = [&](std::vector<ppe::store::KeyValue>& page) {
    listed += page.size();
    return absl::OkStatus();
  };
  if (!(*store)->ListPages("/ppe/", count).ok()) return 1;
  const double list_s = absl::ToDoubleSeconds(absl::Now() - list_start);
  std::printf("%zu %.3f %lld %lld %.3f %.3f %.3f\n", registry->ListProfiles().size(), load_s,
              static_cast<long long>(grown), static_cast<long long>(peak), list_s, cpu_s, etcd_s);
  return 0;
}

// Runs `argv` and returns its stdout; empty on failure.
std::string Run(std::vector<std::string> args) {
  int out[2];
  if (::pipe(out) != 0) return "";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, n);
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? text : "";
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// (2): lag of a follower replica behind another client registering at `rate`/s.
void WatchLag(const ppe::store::testing::EtcdCluster& cluster, absl::Duration duration, int rate) {
  // A Registry commits one mutation at a time, so the writers are several
  // registries (other replicas), each on its own connection.
  constexpr int kWriters = 16;
  auto follower_store = Connect(cluster);
  ppe::registry::Registry follower(*follower_store);
  std::vector<std::unique_ptr<EtcdRegistryStore>> writer_stores;
  std::vector<std::unique_ptr<ppe::registry::Registry>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writer_stores.push_back(Connect(cluster));
    writers.push_back(std::make_unique<ppe::registry::Registry>(*writer_stores.back()));
  }
  const int64_t total = static_cast<int64_t>(absl::ToDoubleSeconds(duration) * rate);
  std::vector<std::atomic<int64_t>> applied(total);  // ns since start; 0 = not yet
  std::vector<int64_t> sent(total, 0);
  std::vector<int64_t> acked(total, 0);
  const absl::Time start = absl::Now() + absl::Milliseconds(200);
  follower.SetChangeListener([&](const std::string& cpt) {
    int64_t k = std::atoll(cpt.c_str() + 3);  // "lag<k>"
    if (cpt.rfind("lag", 0) == 0 && k >= 0 && k < total) {
      int64_t none = 0;
      applied[k].compare_exchange_strong(none, absl::ToInt64Nanoseconds(absl::Now() - start));
    }
  });
  bool started = follower.Load().ok() && follower.Follow().ok();
  for (auto& writer : writers) started = started && writer->Load().ok();
  if (!started) {
    std::fprintf(stderr, "watch lag: cannot start the replicas\n");
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> failed{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2 * kWriters; ++t) {
    workers.emplace_back([&] {
      for (int64_t k; (k = next.fetch_add(1)) < total;) {
        absl::SleepFor(start + absl::Seconds(static_cast<double>(k) / rate) - absl::Now());
        char cpt[32];
        std::snprintf(cpt, sizeof cpt, "lag%08lld", static_cast<long long>(k));
        sent[k] = absl::ToInt64Nanoseconds(absl::Now() - start);
        auto r =
            writers[k % kWriters]->RegisterProfile(cpt, {.region = "eu-west"}, "dns", absl::Now());
        if (!r.ok() || !*r) {
          failed.fetch_add(1);
          continue;
        }
        acked[k] = absl::ToInt64Nanoseconds(absl::Now() - start);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  follower.WaitWatched(follower_store->CurrentRevision(), absl::Seconds(10));
  std::vector<double> lag_ms, commit_ms;
  int64_t early = 0, missing = 0;
  for (int64_t k = 0; k < total; ++k) {
    if (acked[k] == 0) continue;
    const int64_t a = applied[k].load();
    if (a == 0) {
      ++missing;
      continue;
    }
    if (a < acked[k]) ++early;  // applied before the writer saw its ack
    lag_ms.push_back(std::max<int64_t>(0, a - acked[k]) / 1e6);
    commit_ms.push_back((a - sent[k]) / 1e6);
  }
  std::printf("%-22s %8lld registrations in %.1f s (%.0f/s), %lld failed\n", "written",
              static_cast<long long>(total - failed.load()), elapsed,
              (total - failed.load()) / elapsed, static_cast<long long>(failed.load()));
  std::printf(
      "%-22s p50 %.1f ms, p99 %.1f ms, max %.1f ms; %lld applied before their ack, %lld "
      "never applied, %lld re-reads\n",
      "ack -> follower index", Percentile(lag_ms, 0.5), Percentile(lag_ms, 0.99),
      Percentile(lag_ms, 1.0), static_cast<long long>(early), static_cast<long long>(missing),
      static_cast<long long>(follower.resyncs()));
  std::printf("%-22s p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", "sent -> follower index",
              Percentile(commit_ms, 0.5), Percentile(commit_ms, 0.99), Percentile(commit_ms, 1.0));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--load") return LoadMain(argv[2], std::atoi(argv[3]));
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const double lag_seconds = argc > 2 ? std::atof(argv[2]) : 10.0;
  std::vector<int64_t> counts;
  for (int i = 3; i < argc; ++i) counts.push_back(std::atoll(argv[i]));
  if (argc <= 3) counts.push_back(100000);

  ppe::store::testing::TempDir dir;
  if (seconds > 0) {
    const absl::Duration duration = absl::Seconds(seconds);
    std::printf("registrations (create-if-absent Txn of one profile record)\n");
    std::printf("%-34s %12s %12s\n", "store", "x1, /s", "x16, /s");
    {
      auto sqlite = ppe::store::SqliteRegistryStore::Open(dir.path() + "/bench.db");
      if (!sqlite.ok()) return 1;
      std::printf("%-34s %12.0f %12.0f\n", "sqlite (WAL, synchronous=FULL)",
                  Registrations(**sqlite, 1, duration, 0),
                  Registrations(**sqlite, 16, duration, 1));
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
    std::fflush(stdout);
  }

  if (lag_seconds > 0) {
    std::printf(
        "\nwatch lag of a follower replica, 16 other registries registering 1000/s in all (1 "
        "member)\n");
    const std::string sub = dir.path() + "/lag";
    std::filesystem::create_directories(sub);
    auto cluster = ppe::store::testing::EtcdCluster::Start(1, sub);
    if (!cluster.ok()) return 1;
    WatchLag(**cluster, absl::Seconds(lag_seconds), 1000);
    std::fflush(stdout);
  }

  std::printf("\nloading a replica's registry index from etcd (1 member), in a fresh process\n");
  std::printf("%-10s %8s %8s %12s %12s %10s %10s %10s %10s\n", "profiles", "write s", "load s",
              "load CPU s", "etcd CPU s", "list s", "RSS +MiB", "peak +MiB", "B/profile");
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
    const std::string out = Run({std::filesystem::read_symlink("/proc/self/exe").string(), "--load",
                                 (*cluster)->Endpoint(0), std::to_string((*cluster)->pid(0))});
    long long loaded = 0, grown = 0, peak = 0;
    double load_s = 0, list_s = 0, cpu_s = 0, etcd_s = 0;
    if (std::sscanf(out.c_str(), "%lld %lf %lld %lld %lf %lf %lf", &loaded, &load_s, &grown, &peak,
                    &list_s, &cpu_s, &etcd_s) != 7 ||
        loaded != n) {
      std::fprintf(stderr, "the load of %lld profiles failed (%s)\n", static_cast<long long>(n),
                   out.c_str());
      return 1;
    }
    std::printf("%-10lld %8.1f %8.2f %12.2f %12.2f %10.2f %10.1f %10.1f %10.0f\n",
                static_cast<long long>(n), write_s, load_s, cpu_s, etcd_s, list_s, grown / 1024.0,
                peak / 1024.0, grown * 1024.0 / static_cast<double>(n));
    std::fflush(stdout);
  }
  return 0;
}
