#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "ppe-service/store/registry_store.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::store {

// Which RegistryStore a ppe-server keeps its registry in, and where.
struct StoreOptions {
  enum class Kind { kSqlite, kMemory, kEtcd };
  Kind kind = Kind::kSqlite;
  std::string sqlite_path{};
  EtcdRegistryStore::Options etcd{};  // kEtcd
};

// The `registry` section (store, sqlite_path, etcd_*), defaults filled.
StoreOptions StoreOptionsFromConfig(const ppe::config::v1::Registry& registry);

// Opens (SQLite), creates (memory) or connects to (etcd) the store.
absl::StatusOr<std::unique_ptr<RegistryStore>> OpenRegistryStore(const StoreOptions& options);

}  // namespace ppe::store
