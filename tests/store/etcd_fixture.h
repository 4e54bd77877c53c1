#pragma once

// For Catch2 tests: a real etcd (EtcdCluster, Debian's etcd-server) of 1..n
// members in its own temporary directory, and stores connected to it. A
// failed start or connection fails the test.

#include <catch2/catch.hpp>

#include <memory>

#include "ppe-service/store/etcd_registry_store.h"
#include "tests/store/etcd_cluster.h"
#include "tests/store/store_test_util.h"

namespace ppe::store::testing {

struct EtcdFixture {
  explicit EtcdFixture(int members = 1) {
    auto started = EtcdCluster::Start(members, dir.path());
    REQUIRE(started.ok());
    cluster = std::move(*started);
  }
  // A store on every member; `options.endpoints` is filled in.
  std::unique_ptr<EtcdRegistryStore> Connect(EtcdRegistryStore::Options options = {}) const {
    options.endpoints = cluster->Endpoints();
    auto store = EtcdRegistryStore::Connect(options);
    REQUIRE(store.ok());
    return std::move(*store);
  }

  TempDir dir;  // outlives the cluster's members
  std::unique_ptr<EtcdCluster> cluster;
};

}  // namespace ppe::store::testing
