#include "tests/store/etcd_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace ppe::store::testing {
namespace {

// Ports the kernel hands out for port 0, all taken at once so they differ.
std::vector<int> FreePorts(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ports.push_back(0);
    } else {
      ports.push_back(ntohs(addr.sin_port));
    }
    fds.push_back(fd);
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  return ports;
}

std::string Url(int port) { return absl::StrCat("http://127.0.0.1:", port); }

// The member's view of the cluster: (its id, the leader's id), or an error.
absl::StatusOr<std::pair<uint64_t, uint64_t>> Status(const std::string& endpoint) {
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto stub = etcdserverpb::Maintenance::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  etcdserverpb::StatusRequest request;
  etcdserverpb::StatusResponse response;
  grpc::Status status = stub->Status(&context, request, &response);
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return std::make_pair(response.header().member_id(), response.leader());
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(int members, const std::string& dir,
                                                                absl::Duration timeout) {
  std::vector<int> ports = FreePorts(2 * members);
  std::vector<Member> list;
  std::vector<std::string> initial;
  for (int i = 0; i < members; ++i) {
    Member m{
        .name = absl::StrCat("m", i), .client_port = ports[2 * i], .peer_port = ports[2 * i + 1]};
    if (m.client_port == 0 || m.peer_port == 0) return absl::InternalError("no free port");
    initial.push_back(absl::StrCat(m.name, "=", Url(m.peer_port)));
    list.push_back(m);
  }
  std::unique_ptr<EtcdCluster> cluster(new EtcdCluster(dir, std::move(list)));
  const std::string initial_cluster = absl::StrJoin(initial, ",");
  for (int i = 0; i < members; ++i) {
    if (absl::Status s = cluster->Launch(i, initial_cluster); !s.ok()) return s;
  }
  // Ready when every member knows a leader.
  const absl::Time deadline = absl::Now() + timeout;
  for (int i = 0; i < members; ++i) {
    while (true) {
      auto status = Status(cluster->Endpoint(i));
      if (status.ok() && status->second != 0) break;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("etcd member ", i, " not ready; see ", dir, "/m", i, ".log"));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  return cluster;
}

absl::Status EtcdCluster::Launch(int i, const std::string& initial_cluster) {
  Member& m = members_[i];
  const std::string data = absl::StrCat(dir_, "/", m.name, ".etcd");
  const std::string log = absl::StrCat(dir_, "/", m.name, ".log");
  std::vector<std::string> args = {"etcd",
                                   "--name",
                                   m.name,
                                   "--data-dir",
                                   data,
                                   "--listen-client-urls",
                                   Url(m.client_port),
                                   "--advertise-client-urls",
                                   Url(m.client_port),
                                   "--listen-peer-urls",
                                   Url(m.peer_port),
                                   "--initial-advertise-peer-urls",
                                   Url(m.peer_port),
                                   "--initial-cluster",
                                   initial_cluster,
                                   "--initial-cluster-token",
                                   "ppe-test",
                                   "--initial-cluster-state",
                                   "new",
                                   "--logger",
                                   "zap",
                                   "--log-outputs",
                                   log};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    ::execvp("etcd", argv.data());
    ::_exit(127);
  }
  m.pid = pid;
  return absl::OkStatus();
}

EtcdCluster::~EtcdCluster() {
  for (Member& m : members_) {
    if (m.pid > 0) ::kill(m.pid, SIGTERM);
  }
  // A member stopping gracefully hands its leadership over and waits for
  // peers that are stopping too (7 s for three); the data is thrown away, so
  // after a short grace period it is killed.
  const absl::Time grace = absl::Now() + absl::Milliseconds(500);
  for (Member& m : members_) {
    while (m.pid > 0 && ::waitpid(m.pid, nullptr, WNOHANG) == 0) {
      if (absl::Now() > grace) {
        ::kill(m.pid, SIGKILL);
        ::waitpid(m.pid, nullptr, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    m.pid = -1;
  }
}

std::vector<std::string> EtcdCluster::Endpoints() const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) out.push_back(Endpoint(i));
  return out;
}

std::string EtcdCluster::Endpoint(int i) const {
  return absl::StrCat("127.0.0.1:", members_[i].client_port);
}

void EtcdCluster::Kill(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGKILL);
  ::waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

absl::StatusOr<int> EtcdCluster::Leader(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    // Member ids are only known by asking each member for its own.
    std::vector<uint64_t> ids(members_.size(), 0);
    uint64_t leader = 0;
    for (int i = 0; i < size(); ++i) {
      if (members_[i].pid <= 0) continue;
      auto status = Status(Endpoint(i));
      if (!status.ok()) continue;
      ids[i] = status->first;
      if (status->second != 0) leader = status->second;
    }
    for (int i = 0; i < size(); ++i) {
      if (leader != 0 && ids[i] == leader) return i;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError("no etcd leader");
}

}  // namespace ppe::store::testing
