// The plugin's answer table at scale: memory per entry with N synthetic
// (service, CPT) entries of one address each, and look-ups per second from
// 1..4 threads (do readers contend?).
//   answer_table_bench [entries=1000000] [seconds=2]
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend-plugin/answer_table.h"

namespace {

size_t HeapBytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

std::string Cpt(size_t i) {
  static const char* kB32 = "abcdefghijklmnopqrstuvwxyz234567";
  std::string s(26, 'a');
  uint64_t x = i * 0x9E3779B97F4A7C15ull + 12345;
  for (char& c : s) {
    c = kB32[x % 32];
    x = x / 32 + (x << 59) + i;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000000;
  double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
  ppe::plugin::AnswerTable table;
  size_t before = HeapBytes();
  // A snapshot in chunks of 2000, as WatchAnswers sends it.
  size_t chunk = 2000;
  for (size_t start = 0; start < n; start += chunk) {
    ppe::v1::AnswerUpdate u;
    u.set_epoch(1);
    u.set_version(1);
    u.set_reset(start == 0);
    u.set_partial(start + chunk < n);
    for (size_t i = start; i < std::min(n, start + chunk); ++i) {
      auto* p = u.add_profiles();
      p->set_service("video");
      p->set_cpt(Cpt(i));
      p->add_addresses("10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) +
                       "." + std::to_string(i & 255));
      p->set_ttl(30);
    }
    if (!table.Apply(u).ok()) return 1;
  }
  table.SetConnected(true, absl::Now());
  size_t after = HeapBytes();
  std::printf("entries %zu: heap +%.1f MiB, %.0f bytes/entry\n", table.profile_count(),
              (after - before) / 1048576.0, static_cast<double>(after - before) / n);

  std::vector<std::string> keys;
  for (size_t i = 0; i < 100000; ++i) keys.push_back(Cpt(i * (n / 100000 + 1) % n));
  for (int threads = 1; threads <= 4; threads *= 2) {
    std::atomic<long> total{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        std::mt19937 rng(t);
        ppe::plugin::AnswerTable::Answer a;
        long done = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          for (int k = 0; k < 1000; ++k) {
            done += table.FindProfile("video", keys[rng() % keys.size()], a);
          }
        }
        total += done;
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& th : pool) th.join();
    std::printf("look-ups, %d thread(s): %.2f M/s\n", threads, total / seconds / 1e6);
  }
  return 0;
}
