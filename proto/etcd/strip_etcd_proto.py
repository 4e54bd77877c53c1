#!/usr/bin/env python3
"""Copies one of etcd's .proto files without its gogoproto and google.api parts.

etcd's protos (Debian's golang-etcd-server-dev) carry Go-only options: gogoproto
imports and file options, and grpc-gateway HTTP annotations. protoc for C++
needs neither. Imports of other etcd protos keep their "etcd/..." paths; the
output tree mirrors them.

usage: strip_etcd_proto.py <input.proto> <output.proto>
"""
import re
import sys


def strip(text: str) -> str:
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if re.match(r'import\s+"(gogoproto/gogo|google/api/annotations)\.proto"\s*;', stripped):
            i += 1
            continue
        if re.match(r'option\s+\(gogoproto\.[^)]*\)', stripped):
            i += 1
            continue
        if re.match(r'option\s+\(google\.api\.http\)', stripped):
            # A block `option (google.api.http) = { ... };` over several lines.
            depth = 0
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
                if depth <= 0:
                    break
            continue
        # Field options such as [(gogoproto.nullable) = false].
        line = re.sub(r'\s*\[\s*\(gogoproto\.[^\]]*\]', "", line)
        out.append(line)
        i += 1
    result = "\n".join(out) + "\n"
    if "gogoproto" in result or "google.api" in result:
        raise SystemExit("strip_etcd_proto: annotations left in the output")
    return result


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(strip(text))


if __name__ == "__main__":
    main()
