#include "ppe-service/cpt/key_ring.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "absl/strings/string_view.h"
#include "ppe-service/common/status_macros.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ppe::cpt {
namespace {

absl::Status CreateKeyFile(const std::string& path) {
  unsigned char key[KeyRing::kKeyBytes];
  if (RAND_bytes(key, sizeof key) != 1) return absl::InternalError("RAND_bytes failed");
  std::string line = absl::StrCat(
      "# PPE CPT keys: <version> <hex key>; the highest version issues new tags.\n0 ",
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(key), sizeof key)), "\n");
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("create ", path, ": ", strerror(errno)));
  bool ok =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("write ", path, ": ", strerror(errno)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<KeyRing> KeyRing::LoadOrCreate(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT)
      return absl::InternalError(absl::StrCat("stat ", path, ": ", strerror(errno)));
    PPE_RETURN_IF_ERROR(CreateKeyFile(path));
  } else if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, " is readable by others; chmod 600 it"));
  }
  std::ifstream in(path);
  if (!in) return absl::InternalError(absl::StrCat("cannot read key file ", path));
  KeyRing ring;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    std::vector<absl::string_view> parts = absl::StrSplit(text, ' ', absl::SkipEmpty());
    int version;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &version) || version < 0 ||
        version >= kMaxVersions || parts[1].size() != 2 * kKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": expected '<version 0..31> <64 hex chars>'"));
    }
    ring.keys_[version] = absl::HexStringToBytes(parts[1]);
  }
  if (ring.keys_.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no keys"));
  ring.current_ = ring.keys_.rbegin()->first;
  return ring;
}

KeyRing KeyRing::ForTesting(absl::string_view key) {
  KeyRing ring;
  ring.keys_[0] = std::string(key);
  return ring;
}

const std::string* KeyRing::VerifyingKey(int version) const {
  auto it = keys_.find(version);
  if (it == keys_.end()) return nullptr;
  if (version != current_) {
    auto prev = keys_.find(current_);
    if (prev == keys_.begin() || std::prev(prev)->first != version) return nullptr;
  }
  return &it->second;
}

}  // namespace ppe::cpt
