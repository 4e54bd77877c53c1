// A UDP DNS load generator for dns_bench.py: like dnsperf, but each query can
// carry its own EDNS Client Subnet (dnsperf sends one fixed option), and it
// reports latency percentiles. One thread, `window` queries in flight, or a
// fixed rate (open loop) with --rate.
//   dns_load PORT QUERYFILE SECONDS [--window N] [--rate QPS] [--ecs-subnets N] [--count N]
// QUERYFILE: "name type" a line, sent in order, cycling. --ecs-subnets N adds
// ECS 10.a.b.0/24 to query i with (a, b) from i mod N; --count stops after N
// queries (or SECONDS). Prints one JSON line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string Packet(uint16_t id, const std::string& name, uint16_t qtype, int ecs_index) {
  std::string p;
  auto u16 = [&](uint16_t v) {
    p.push_back(static_cast<char>(v >> 8));
    p.push_back(static_cast<char>(v & 255));
  };
  u16(id), u16(0x0000), u16(1), u16(0), u16(0), u16(1);  // no RD: an authoritative query
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    p.push_back(static_cast<char>(dot - start));
    p.append(name, start, dot - start);
    start = dot + 1;
  }
  p.push_back(0);
  u16(qtype), u16(1);
  // OPT RR
  p.push_back(0), u16(41), u16(4096), u16(0), u16(0);
  if (ecs_index < 0) {
    u16(0);
  } else {
    u16(4 + 4 + 3), u16(8), u16(4 + 3), u16(1);
    p.push_back(24), p.push_back(0);
    p.push_back(10), p.push_back(static_cast<char>(ecs_index >> 8 & 255));
    p.push_back(static_cast<char>(ecs_index & 255));
  }
  return p;
}

uint16_t Type(const std::string& t) {
  if (t == "AAAA") return 28;
  if (t == "SOA") return 6;
  if (t == "NS") return 2;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: dns_load PORT QUERYFILE SECONDS [--window N] [--rate QPS] "
                 "[--ecs-subnets N]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  double seconds = std::atof(argv[3]);
  int window = 100, ecs_subnets = 0;
  long count = 0;
  double rate = 0;
  for (int i = 4; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--window") window = std::atoi(argv[i + 1]);
    if (a == "--rate") rate = std::atof(argv[i + 1]);
    if (a == "--ecs-subnets") ecs_subnets = std::atoi(argv[i + 1]);
    if (a == "--count") count = std::atol(argv[i + 1]);
  }
  std::vector<std::pair<std::string, uint16_t>> queries;
  std::ifstream in(argv[2]);
  std::string name, type;
  while (in >> name >> type) queries.emplace_back(name, Type(type));
  if (queries.empty()) return 2;

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));

  std::vector<Clock::time_point> sent_at(65536);
  std::vector<bool> pending(65536, false);
  std::vector<double> latencies;
  latencies.reserve(1 << 20);
  long sent = 0, received = 0, lost = 0, rcodes[16] = {0};
  int inflight = 0;
  uint16_t next_id = 0;
  size_t next_query = 0;
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto timeout = std::chrono::seconds(1);
  char reply[4096];
  auto last_sweep = start;
  while (true) {
    auto now = Clock::now();
    bool sending = now < end && (count == 0 || sent < count);
    if (!sending && inflight == 0) break;
    if (!sending && now > end + timeout) break;
    bool may_send = sending && inflight < window;
    if (rate > 0) {
      may_send =
          sending && inflight < 65000 &&
          sent < static_cast<long>(std::chrono::duration<double>(now - start).count() * rate);
    }
    if (may_send && !pending[next_id]) {
      const auto& q = queries[next_query++ % queries.size()];
      int ecs = ecs_subnets > 0 ? static_cast<int>(sent % ecs_subnets) : -1;
      std::string p = Packet(next_id, q.first, q.second, ecs);
      if (send(fd, p.data(), p.size(), 0) == static_cast<ssize_t>(p.size())) {
        sent_at[next_id] = now;
        pending[next_id] = true;
        ++inflight;
        ++sent;
        ++next_id;
      }
      continue;
    }
    ssize_t n = recv(fd, reply, sizeof(reply), 0);
    if (n >= 4) {
      uint16_t id = static_cast<uint16_t>((static_cast<uint8_t>(reply[0]) << 8) |
                                          static_cast<uint8_t>(reply[1]));
      if (pending[id]) {
        pending[id] = false;
        --inflight;
        ++received;
        ++rcodes[reply[3] & 15];
        latencies.push_back(std::chrono::duration<double>(Clock::now() - sent_at[id]).count());
      }
    } else if (now - last_sweep > std::chrono::milliseconds(100)) {
      last_sweep = now;
      for (int id = 0; id < 65536; ++id) {
        if (pending[id] && now - sent_at[id] > timeout) {
          pending[id] = false;
          --inflight;
          ++lost;
        }
      }
    } else if (n < 0) {
      usleep(rate > 0 ? 20 : 0);
    }
  }
  double elapsed = std::chrono::duration<double>(std::min(Clock::now(), end) - start).count();
  if (count > 0) elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    if (latencies.empty()) return 0.0;
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))] *
           1e3;
  };
  std::printf(
      "{\"qps\": %.1f, \"sent\": %ld, \"received\": %ld, \"lost\": %ld, \"p50_ms\": %.3f, "
      "\"p99_ms\": %.3f, \"noerror\": %ld, \"servfail\": %ld, \"nxdomain\": %ld}\n",
      received / elapsed, sent, received, lost, pct(0.5), pct(0.99), rcodes[0], rcodes[2],
      rcodes[3]);
  return 0;
}
