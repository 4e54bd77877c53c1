#include "ppe-service/store/txn_rules.h"

#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ppe::store::internal {
namespace {

absl::Status ValidateBranch(const std::vector<Op>& ops, const char* branch) {
  std::set<absl::string_view> keys;
  std::vector<absl::string_view> prefixes;
  for (const Op& op : ops) {
    if (op.key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("txn ", branch, ": empty key"));
    }
    if (op.type == Op::Type::kDeletePrefix) {
      prefixes.push_back(op.key);
    } else if (!keys.insert(op.key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("txn ", branch, ": duplicate key given in txn request: ", op.key));
    }
  }
  for (absl::string_view prefix : prefixes) {
    for (const Op& op : ops) {
      if (op.type == Op::Type::kPut && absl::StartsWith(op.key, prefix)) {
        return absl::InvalidArgumentError(absl::StrCat("txn ", branch, ": put of ", op.key,
                                                       " overlaps delete of prefix ",
                                                       std::string(prefix)));
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
bool CompareOrdered(Compare::Result result, const T& have, const T& want) {
  switch (result) {
    case Compare::Result::kEqual:
      return have == want;
    case Compare::Result::kNotEqual:
      return have != want;
    case Compare::Result::kGreater:
      return have > want;
    case Compare::Result::kLess:
      return have < want;
  }
  return false;
}

}  // namespace

absl::Status ValidateTxn(const Txn& txn) {
  for (const Compare& c : txn.compares) {
    if (c.key.empty()) return absl::InvalidArgumentError("txn: empty compare key");
  }
  absl::Status status = ValidateBranch(txn.success, "success");
  if (!status.ok()) return status;
  return ValidateBranch(txn.failure, "failure");
}

bool EvaluateCompare(const Compare& compare, const std::optional<KeyValue>& current) {
  switch (compare.target) {
    case Compare::Target::kValue:
      if (!current.has_value()) return false;
      return CompareOrdered<absl::string_view>(compare.result, current->value, compare.value);
    case Compare::Target::kVersion:
      return CompareOrdered<int64_t>(compare.result, current ? current->version : 0,
                                     compare.number);
    case Compare::Target::kCreateRevision:
      return CompareOrdered<int64_t>(compare.result, current ? current->create_revision : 0,
                                     compare.number);
    case Compare::Target::kModRevision:
      return CompareOrdered<int64_t>(compare.result, current ? current->mod_revision : 0,
                                     compare.number);
  }
  return false;
}

std::string PrefixRangeEnd(absl::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return end;
}

absl::Status CompactedError(int64_t compact_revision) {
  return absl::OutOfRangeError(absl::StrCat(
      "mvcc: required revision has been compacted (compact revision ", compact_revision, ")"));
}

absl::StatusOr<bool> CompactionNeeded(int64_t revision, int64_t current, int64_t compacted) {
  if (revision > current) {
    return absl::OutOfRangeError(
        absl::StrCat("mvcc: required revision is a future revision: ", revision, " > ", current));
  }
  return revision > compacted;
}

}  // namespace ppe::store::internal
