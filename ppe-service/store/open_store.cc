#include "ppe-service/store/open_store.h"

#include "ppe-service/common/status_macros.h"
#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/store/sqlite_registry_store.h"

namespace ppe::store {

StoreOptions StoreOptionsFromConfig(const ppe::config::v1::Registry& r) {
  using Store = ppe::config::v1::Registry;
  return {.kind = r.store() == Store::MEMORY ? StoreOptions::Kind::kMemory
                  : r.store() == Store::ETCD ? StoreOptions::Kind::kEtcd
                                             : StoreOptions::Kind::kSqlite,
          .sqlite_path = r.sqlite_path(),
          .etcd = {.endpoints = {r.etcd_endpoints().begin(), r.etcd_endpoints().end()},
                   .prefix = r.etcd_prefix(),
                   .ca_file = r.etcd_ca_file(),
                   .tls_server_name = r.etcd_tls_server_name(),
                   .cert_file = r.etcd_cert_file(),
                   .key_file = r.etcd_key_file(),
                   .timeout = absl::Milliseconds(r.etcd_timeout_ms())}};
}

absl::StatusOr<std::unique_ptr<RegistryStore>> OpenRegistryStore(const StoreOptions& options) {
  switch (options.kind) {
    case StoreOptions::Kind::kMemory:
      return std::make_unique<MemoryRegistryStore>();
    case StoreOptions::Kind::kEtcd: {
      PPE_ASSIGN_OR_RETURN(std::unique_ptr<EtcdRegistryStore> etcd,
                           EtcdRegistryStore::Connect(options.etcd));
      return std::unique_ptr<RegistryStore>(std::move(etcd));
    }
    case StoreOptions::Kind::kSqlite:
      break;
  }
  PPE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteRegistryStore> db,
                       SqliteRegistryStore::Open(options.sqlite_path));
  return std::unique_ptr<RegistryStore>(std::move(db));
}

}  // namespace ppe::store
