#include "ppe-service/store/registry_store.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"

namespace ppe::store {
namespace {

Compare MakeCompare(std::string_view key, Compare::Target target, Compare::Result result,
                    int64_t number) {
  Compare c;
  c.key = std::string(key);
  c.target = target;
  c.result = result;
  c.number = number;
  return c;
}

}  // namespace

Compare Compare::ValueEquals(std::string_view key, std::string_view value) {
  Compare c = MakeCompare(key, Target::kValue, Result::kEqual, 0);
  c.value = std::string(value);
  return c;
}

Compare Compare::ModRevisionEquals(std::string_view key, int64_t revision) {
  return MakeCompare(key, Target::kModRevision, Result::kEqual, revision);
}

Compare Compare::CreateRevisionEquals(std::string_view key, int64_t revision) {
  return MakeCompare(key, Target::kCreateRevision, Result::kEqual, revision);
}

Compare Compare::VersionEquals(std::string_view key, int64_t version) {
  return MakeCompare(key, Target::kVersion, Result::kEqual, version);
}

Compare Compare::Absent(std::string_view key) {
  return MakeCompare(key, Target::kCreateRevision, Result::kEqual, 0);
}

Compare Compare::Present(std::string_view key) {
  return MakeCompare(key, Target::kCreateRevision, Result::kGreater, 0);
}

Op Op::Put(std::string_view key, std::string_view value) {
  Op op;
  op.type = Type::kPut;
  op.key = std::string(key);
  op.value = std::string(value);
  return op;
}

Op Op::Delete(std::string_view key) {
  Op op;
  op.type = Type::kDelete;
  op.key = std::string(key);
  return op;
}

Op Op::DeletePrefix(std::string_view prefix) {
  Op op;
  op.type = Type::kDeletePrefix;
  op.key = std::string(prefix);
  return op;
}

absl::StatusOr<int64_t> RegistryStore::Put(std::string_view key, std::string_view value) {
  ppe::store::Txn txn;
  txn.success.push_back(Op::Put(key, value));
  absl::StatusOr<TxnResult> result = Txn(txn);
  if (!result.ok()) return result.status();
  return result->revision;
}

absl::StatusOr<bool> RegistryStore::Delete(std::string_view key) {
  ppe::store::Txn txn;
  txn.compares.push_back(Compare::Present(key));
  txn.success.push_back(Op::Delete(key));
  absl::StatusOr<TxnResult> result = Txn(txn);
  if (!result.ok()) return result.status();
  return result->succeeded;
}

absl::StatusOr<bool> RegistryStore::CompareAndPut(std::string_view key,
                                                  int64_t expected_mod_revision,
                                                  std::string_view value) {
  ppe::store::Txn txn;
  txn.compares.push_back(Compare::ModRevisionEquals(key, expected_mod_revision));
  txn.success.push_back(Op::Put(key, value));
  absl::StatusOr<TxnResult> result = Txn(txn);
  if (!result.ok()) return result.status();
  return result->succeeded;
}

bool IsCompacted(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange &&
         absl::StrContains(status.message(), "compacted");
}

}  // namespace ppe::store
