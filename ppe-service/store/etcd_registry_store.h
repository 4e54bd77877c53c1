#pragma once

// RegistryStore over etcd v3's gRPC API (KV, Watch, Maintenance), so that
// several ppe-server processes share one registry.
//
// One to one with etcd:
//  - keys: every key is stored as `prefix + key`; List/Watch ranges are the
//    prefix ranges of etcd (GetPrefixRangeEnd);
//  - revisions: store revision = etcd revision - 1. An empty etcd is at
//    revision 1, so an empty store is at 0 and the first write makes 1, as the
//    contract says. Writes by other users of the same etcd (other prefixes,
//    leases, elections) advance the store revision too;
//  - Txn -> etcd Txn (Compare / RequestPut / RequestDeleteRange); Compact(r)
//    -> etcd Compact at the etcd revision of r;
//  - Watch -> one etcd Watch stream per watch, created before Watch returns.
//    A watch from store revision r starts etcd at r (= store r - 1) and drops
//    that revision's events: etcd keeps watches that start at its compact
//    revision, the contract drops those at it, and this one-below start makes
//    etcd itself report "compacted" exactly when the contract does. A broken stream (member gone)
//    is resumed from the last delivered revision + 1 on another member, without a gap.
//
// Every unary call carries a deadline (Options::timeout; a Txn's is shorter
// while etcd does not answer: Options::timeout_while_unanswered); reads that fail with
// UNAVAILABLE are retried on another member within it; writes are not (etcd
// may have applied them). Reads of the registry on the DNS path never reach
// this class: the Registry serves them from its in-memory index.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/store/registry_store.h"

namespace grpc {
class Channel;
class Status;
}  // namespace grpc

namespace ppe::store {

class EtcdRegistryStore final : public RegistryStore {
 public:
  struct Options {
    // Client URLs' host:port of the members ("127.0.0.1:2379"). IP literals
    // are balanced round-robin; one DNS name may stand for all members.
    std::vector<std::string> endpoints = {};
    // Prepended to every key ("/ppe/"); "" = the whole keyspace.
    std::string prefix = {};
    // TLS when ca_file is set; cert_file + key_file add a client certificate.
    std::string ca_file = {};
    // With TLS and several IPv4 endpoints (one balanced channel): the name
    // checked in every member's certificate; empty = the first endpoint's
    // address. gRPC would otherwise check the whole "a:p,b:p" list as one name.
    std::string tls_server_name = {};
    std::string cert_file = {};
    std::string key_file = {};
    // Deadline of each unary call (and of a watch's creation).
    absl::Duration timeout = absl::Seconds(5);
    // The deadline of a Txn while etcd does not answer: after a Range or Txn
    // went unanswered (DEADLINE_EXCEEDED, UNAVAILABLE: etcd without quorum,
    // members gone) and until one is answered. During an outage, writes
    // (serialized by the registry) fail in this time with a status naming
    // etcd instead of each waiting out `timeout`, so an Admin call's caller
    // sees why. Reads keep `timeout` (a large List page may need it).
    absl::Duration timeout_while_unanswered = absl::Seconds(1);
    // Revisions of watch history kept: the store compacts etcd to
    // current - history_revisions as it writes (0 = never; leave it to etcd's
    // --auto-compaction-*).
    int64_t history_revisions = 10000;
    // Listing (List, ListPages): at most this many keys per Range call (one
    // gRPC message, one page of ListPages). etcd 3.4 walks the whole rest of
    // a range for every paged Range, so the lister does not page: it splits
    // the prefix into sub-ranges of at most this many keys, found with
    // count-only Ranges, and reads each sub-range whole (see ListPages).
    int64_t list_page_size = 50000;
    // Range calls a listing has in flight at once.
    int list_parallelism = 4;
  };

  // Connects and reads the current revision (fails if no member answers).
  static absl::StatusOr<std::unique_ptr<EtcdRegistryStore>> Connect(Options options);

  // Cancels the live watches: each gets CANCELLED on its own thread.
  ~EtcdRegistryStore() override;

  EtcdRegistryStore(const EtcdRegistryStore&) = delete;
  EtcdRegistryStore& operator=(const EtcdRegistryStore&) = delete;

  absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key) override;
  absl::StatusOr<RangeResult> List(absl::string_view prefix) override;
  // A first Range (limit 1 000) returns a small list whole; for a larger one
  // it fixes the revision of every further read and counts the keys. The
  // prefix is then split by the byte after it into 256 sub-ranges (count-only
  // Ranges in read-only Txns), recursively until each has at most
  // list_page_size keys; a sub-range holding every key of its parent skips to
  // the longest prefix its keys share (a prefix of its first key). Adjacent
  // small sub-ranges are read together; list_parallelism reads run ahead of
  // `on_page`, which gets them in key order.
  absl::StatusOr<int64_t> ListPages(absl::string_view prefix, const PageCallback& on_page) override;
  absl::StatusOr<TxnResult> Txn(const ppe::store::Txn& txn) override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(absl::string_view prefix,
                                                     int64_t from_revision,
                                                     WatchCallback callback) override;
  absl::Status Compact(int64_t revision) override;
  // The last revision etcd reported (asks etcd; on failure, the last seen).
  int64_t CurrentRevision() override;

  const Options& options() const { return options_; }
  // The channel to the members (with the TLS options), for other etcd clients
  // of the same process (the cluster's election, locks and membership).
  std::shared_ptr<grpc::Channel> channel() const;
  // Range and Txn calls etcd left unanswered since start (DEADLINE_EXCEEDED,
  // UNAVAILABLE: no quorum, or no member reachable), for the metrics.
  int64_t unanswered_calls() const { return unanswered_calls_.load(); }

  struct WatchState;  // one watch stream; shared with its thread

 private:
  struct Stubs;
  EtcdRegistryStore(Options options, std::shared_ptr<Stubs> stubs);

  // The etcd key `key` (zero or one kvs) and the revision it was read at.
  absl::StatusOr<RangeResult> ReadKey(const std::string& key);
  void SeeRevision(int64_t etcd_revision);
  // The deadline of the next Txn, and what the last call's answer says.
  absl::Duration CallTimeout() const;
  void NoteAnswer(const grpc::Status& status);
  void MaybeAutoCompact(int64_t store_revision);

  const Options options_;
  const std::shared_ptr<Stubs> stubs_;
  std::atomic<int64_t> last_etcd_revision_{1};
  std::atomic<int64_t> auto_compacted_{0};
  std::atomic<bool> answering_{true};  // the last Range/Txn was answered
  std::atomic<int64_t> unanswered_calls_{0};
  absl::Mutex mu_;
  std::vector<std::weak_ptr<WatchState>> watches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::store
