// The cheapest possible pdns remote backend, for dns_bench.py --ceiling: it
// serves the unix connector with the same I/O pattern as ppe-backend (a thread
// per connection, blocking read, one reply line per request line) but does no
// work: every reply is a constant chosen by the request's qtype. pdns + this
// responder is the throughput no remote backend can beat on this machine.
//   null_backend SOCKET ZONE ADDRESS
// Replies: getAllDomains -> ZONE (id 1); SOA look-ups -> ZONE's SOA; NS look-ups
// -> false; other look-ups -> one A record ADDRESS for the qname; anything else
// -> true (initialize) or an empty result (metadata).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

namespace {

std::string_view Field(std::string_view line, std::string_view key) {
  size_t at = line.find(key);
  if (at == std::string_view::npos) return {};
  size_t start = line.find('"', at + key.size());
  if (start == std::string_view::npos) return {};
  size_t end = line.find('"', start + 1);
  if (end == std::string_view::npos) return {};
  return line.substr(start + 1, end - start - 1);
}

void Serve(int fd, const std::string& zone, const std::string& address) {
  std::string buffer, reply;
  char chunk[16384];
  while (true) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = buffer.find('\n', start)) != std::string::npos) {
      std::string_view line(buffer.data() + start, nl - start);
      start = nl + 1;
      std::string_view method = Field(line, "\"method\"");
      reply.clear();
      if (method == "lookup") {
        std::string_view qtype = Field(line, "\"qtype\"");
        std::string_view qname = Field(line, "\"qname\"");
        if (qtype == "SOA") {
          reply = "{\"result\":[{\"qtype\":\"SOA\",\"qname\":\"" + zone + "\",\"content\":\"ns1." +
                  zone + " hostmaster." + zone + " 1 3600 600 604800 60\",\"ttl\":3600}]}";
        } else if (qtype == "NS") {
          reply = "{\"result\":false}";
        } else {
          reply = "{\"result\":[{\"qtype\":\"A\",\"qname\":\"" + std::string(qname) +
                  "\",\"content\":\"" + address + "\",\"ttl\":30}]}";
        }
      } else if (method == "getAllDomains") {
        reply = "{\"result\":[{\"id\":1,\"zone\":\"" + zone +
                "\",\"kind\":\"native\",\"serial\":1,\"notified_serial\":1,\"last_check\":0,"
                "\"masters\":[]}]}";
      } else if (method == "getAllDomainMetadata") {
        reply = "{\"result\":{}}";
      } else if (method == "getDomainMetadata") {
        reply = "{\"result\":[]}";
      } else {
        reply = "{\"result\":true}";
      }
      reply.push_back('\n');
      if (write(fd, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) {
        close(fd);
        return;
      }
    }
    buffer.erase(0, start);
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: null_backend SOCKET ZONE ADDRESS\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  std::string zone = argv[2], address = argv[3];
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", argv[1]);
  int listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  unlink(argv[1]);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd, 64) != 0) {
    std::perror("null_backend: bind/listen");
    return 1;
  }
  while (true) {
    int fd = accept(listen_fd, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    std::thread(Serve, fd, zone, address).detach();
  }
}
