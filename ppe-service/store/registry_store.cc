#include "ppe-service/store/registry_store.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::store {
namespace {

Compare MakeCompare(absl::string_view key, Compare::Target target, Compare::Result result,
                    int64_t number) {
  Compare c;
  c.key = std::string(key);
  c.target = target;
  c.result = result;
  c.number = number;
  return c;
}

}  // namespace

Compare Compare::ValueEquals(absl::string_view key, absl::string_view value) {
  Compare c = MakeCompare(key, Target::kValue, Result::kEqual, 0);
  c.value = std::string(value);
  return c;
}

Compare Compare::ModRevisionEquals(absl::string_view key, int64_t revision) {
  return MakeCompare(key, Target::kModRevision, Result::kEqual, revision);
}

Compare Compare::CreateRevisionEquals(absl::string_view key, int64_t revision) {
  return MakeCompare(key, Target::kCreateRevision, Result::kEqual, revision);
}

Compare Compare::VersionEquals(absl::string_view key, int64_t version) {
  return MakeCompare(key, Target::kVersion, Result::kEqual, version);
}

Compare Compare::Absent(absl::string_view key) {
  return MakeCompare(key, Target::kCreateRevision, Result::kEqual, 0);
}

Compare Compare::Present(absl::string_view key) {
  return MakeCompare(key, Target::kCreateRevision, Result::kGreater, 0);
}

Op Op::Put(absl::string_view key, absl::string_view value) {
  Op op;
  op.type = Type::kPut;
  op.key = std::string(key);
  op.value = std::string(value);
  return op;
}

Op Op::Delete(absl::string_view key) {
  Op op;
  op.type = Type::kDelete;
  op.key = std::string(key);
  return op;
}

Op Op::DeletePrefix(absl::string_view prefix) {
  Op op;
  op.type = Type::kDeletePrefix;
  op.key = std::string(prefix);
  return op;
}

absl::StatusOr<int64_t> RegistryStore::Put(absl::string_view key, absl::string_view value) {
  ppe::store::Txn txn;
  txn.success.push_back(Op::Put(key, value));
  PPE_ASSIGN_OR_RETURN(TxnResult result, Txn(txn));
  return result.revision;
}

absl::StatusOr<bool> RegistryStore::Delete(absl::string_view key) {
  ppe::store::Txn txn;
  txn.compares.push_back(Compare::Present(key));
  txn.success.push_back(Op::Delete(key));
  PPE_ASSIGN_OR_RETURN(TxnResult result, Txn(txn));
  return result.succeeded;
}

absl::StatusOr<bool> RegistryStore::CompareAndPut(absl::string_view key,
                                                  int64_t expected_mod_revision,
                                                  absl::string_view value) {
  ppe::store::Txn txn;
  txn.compares.push_back(Compare::ModRevisionEquals(key, expected_mod_revision));
  txn.success.push_back(Op::Put(key, value));
  PPE_ASSIGN_OR_RETURN(TxnResult result, Txn(txn));
  return result.succeeded;
}

bool IsCompacted(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange &&
         absl::StrContains(status.message(), "compacted");
}

}  // namespace ppe::store
