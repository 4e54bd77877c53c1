#include "ppe-service/cpt/base32.h"

namespace ppe::cpt {

std::string Base32Encode(absl::string_view bytes, size_t chars) {
  std::string out;
  out.reserve(chars);
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5 && out.size() < chars) {
      out.push_back(kBase32Alphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
    if (out.size() == chars) break;
  }
  return out;
}

int Base32Value(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

}  // namespace ppe::cpt
