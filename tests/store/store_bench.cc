// Prints commits/s of the RegistryStore implementations. No assertions.
//
//   store_bench [seconds per run, default 2] [directory for the SQLite file]
//
// Each run commits single-key Puts (one Txn each) for the given time, first
// from one thread, then from 4 threads at once. Then the scaler's demand
// checkpoint shape: one Txn putting (then overwriting) N keys of 250 bytes,
// an hour of counts of N series, plus a Delete per series.

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/store/sqlite_registry_store.h"

namespace {

using ppe::store::RegistryStore;

double Run(RegistryStore& store, int threads, absl::Duration duration) {
  std::atomic<int64_t> commits{0};
  std::atomic<bool> failed{false};
  const absl::Time end = absl::Now() + duration;
  const absl::Time start = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::string value(200, 'v');  // about a registry record
      for (int64_t i = 0; absl::Now() < end; ++i) {
        const std::string key = "bench/" + std::to_string(t) + "/" + std::to_string(i % 1000);
        if (!store.Put(key, value).ok()) {
          failed = true;
          return;
        }
        commits.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (failed) std::fprintf(stderr, "a commit failed\n");
  return commits.load() / seconds;
}

// Seconds for one Txn with `series` puts of a 250-byte value (about a
// DemandChunk of 60 floats) and as many deletes of absent keys.
double Checkpoint(RegistryStore& store, int series, char fill) {
  ppe::store::Txn txn;
  const std::string value(250, fill);
  for (int i = 0; i < series; ++i) {
    const std::string key = "/ppe/scaling/demand/cpt" + std::to_string(i) + "/video/";
    txn.success.push_back(ppe::store::Op::Put(key + "0000000001000000", value));
    txn.success.push_back(ppe::store::Op::Delete(key + "0000000000989860"));
  }
  const absl::Time start = absl::Now();
  if (!store.Txn(txn).ok()) std::fprintf(stderr, "the checkpoint failed\n");
  return absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const absl::Duration duration = absl::Seconds(seconds > 0 ? seconds : 2.0);
  std::string dir = argc > 2 ? argv[2] : "";
  bool remove_dir = false;
  if (dir.empty()) {
    char pattern[] = "/tmp/ppe-store-bench-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = pattern;
    remove_dir = true;
  }
  const std::string path = dir + "/bench.db";

  std::printf("%-28s %12s\n", "store", "commits/s");
  {
    auto store = ppe::store::SqliteRegistryStore::Open(path);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    std::printf("%-28s %12.0f\n", "sqlite (WAL, sync=FULL) x1", Run(**store, 1, duration));
    std::printf("%-28s %12.0f\n", "sqlite (WAL, sync=FULL) x4", Run(**store, 4, duration));
    std::printf("  database: %s\n", path.c_str());
    std::printf("\n%-28s %12s %12s\n", "demand checkpoint (sqlite)", "first, s", "rewrite, s");
    for (int series : {1000, 10000, 100000}) {
      const double first = Checkpoint(**store, series, 'a');
      const double rewrite = Checkpoint(**store, series, 'b');
      std::printf("%-28s %12.3f %12.3f\n", (std::to_string(series) + " series").c_str(), first,
                  rewrite);
    }
    std::printf("\n");
  }
  {
    ppe::store::MemoryRegistryStore store;
    std::printf("%-28s %12.0f\n", "memory x1", Run(store, 1, duration));
    std::printf("%-28s %12.0f\n", "memory x4", Run(store, 4, duration));
  }
  if (remove_dir) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  return 0;
}
