#include "ppe-service/store/etcd_registry_store.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/store/txn_rules.h"

namespace ppe::store {
namespace {

namespace pb = ::etcdserverpb;

// Store revision <-> etcd revision (an empty etcd is at revision 1).
int64_t StoreRevision(int64_t etcd_revision) { return etcd_revision > 0 ? etcd_revision - 1 : 0; }
// A revision inside a compare: 0 (absent) stays 0.
int64_t EtcdRevision(int64_t store_revision) {
  return store_revision > 0 ? store_revision + 1 : store_revision;
}

// etcd's own deadline: the member ran out of the propagated deadline first
// (gRPC code UNKNOWN, "context deadline exceeded").
bool IsEtcdDeadline(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         (status.error_code() == grpc::StatusCode::UNKNOWN &&
          absl::StrContains(status.error_message(), "deadline exceeded"));
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  // No answer in time, or none from this member: etcd lost its quorum (a
  // member without a raft leader holds writes and linearizable reads until the
  // deadline) or is unreachable. Say so rather than a bare "Deadline Exceeded".
  absl::StatusCode code = static_cast<absl::StatusCode>(status.error_code());
  const char* hint = "";
  if (IsEtcdDeadline(status)) {
    code = absl::StatusCode::kDeadlineExceeded;
    hint = " (no answer in time: etcd has no quorum or no member is reachable)";
  } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    hint = " (etcd unreachable, or it has no quorum)";
  }
  return absl::Status(code,
                      absl::StrCat("etcd ", std::string(what), ": ", status.error_message(), hint));
}

void SetDeadline(grpc::ClientContext& context, absl::Time deadline) {
  context.set_deadline(absl::ToChronoTime(deadline));
}

// etcd's range end for "every key starting with `prefix`": "\0" (= no upper
// bound) when the prefix is empty or all 0xff.
std::string RangeEnd(absl::string_view prefix) {
  std::string end = internal::PrefixRangeEnd(prefix);
  return end.empty() ? std::string(1, '\0') : end;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("etcd TLS: cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool IsIpv4Endpoint(const std::string& endpoint) {
  size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) return false;
  std::vector<std::string> parts = absl::StrSplit(endpoint.substr(0, colon), '.');
  if (parts.size() != 4) return false;
  for (const std::string& part : parts) {
    int octet;
    if (!absl::SimpleAtoi(part, &octet) || octet < 0 || octet > 255) return false;
  }
  return true;
}

// gRPC target for the member list: "ipv4:a:p,b:p" for IP literals (balanced
// round-robin), else the one name given.
absl::StatusOr<std::string> ChannelTarget(const std::vector<std::string>& endpoints) {
  std::vector<std::string> bare;
  for (const std::string& e : endpoints) {
    absl::string_view v = e;
    absl::ConsumePrefix(&v, "http://");
    absl::ConsumePrefix(&v, "https://");
    bare.emplace_back(v);
  }
  if (bare.empty()) return absl::InvalidArgumentError("etcd: no endpoints configured");
  if (std::all_of(bare.begin(), bare.end(), IsIpv4Endpoint)) {
    return absl::StrCat("ipv4:", absl::StrJoin(bare, ","));
  }
  if (bare.size() == 1) return bare[0];
  return absl::InvalidArgumentError(
      "etcd: several endpoints must be IPv4 host:port literals; use one DNS name that "
      "resolves to every member instead");
}

// One Range call. A read is safe to repeat: UNAVAILABLE (member gone) is
// retried until the deadline, on whichever member the balancer picks next.
// `note` sees the final gRPC status (the store's NoteAnswer).
using NoteFn = std::function<void(const grpc::Status&)>;

absl::StatusOr<pb::RangeResponse> RangeCall(pb::KV::Stub& kv, const pb::RangeRequest& request,
                                            absl::Duration timeout, const NoteFn& note) {
  const absl::Time deadline = absl::Now() + timeout;
  pb::RangeResponse response;
  grpc::Status status;
  for (absl::Duration wait = absl::Milliseconds(10);; wait = std::min(wait * 2, absl::Seconds(1))) {
    grpc::ClientContext context;
    SetDeadline(context, deadline);
    status = kv.Range(&context, request, &response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() + wait >= deadline) {
      break;
    }
    absl::SleepFor(wait);
  }
  note(status);
  if (!status.ok()) return FromGrpc(status, "range");
  return response;
}

// A Txn of Range requests only, retried like RangeCall (it writes nothing).
absl::StatusOr<pb::TxnResponse> ReadTxnCall(pb::KV::Stub& kv, const pb::TxnRequest& request,
                                            absl::Duration timeout, const NoteFn& note) {
  const absl::Time deadline = absl::Now() + timeout;
  pb::TxnResponse response;
  grpc::Status status;
  for (absl::Duration wait = absl::Milliseconds(10);; wait = std::min(wait * 2, absl::Seconds(1))) {
    grpc::ClientContext context;
    SetDeadline(context, deadline);
    status = kv.Txn(&context, request, &response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() + wait >= deadline) {
      break;
    }
    absl::SleepFor(wait);
  }
  note(status);
  if (!status.ok()) return FromGrpc(status, "txn");
  return response;
}

KeyValue ToKeyValue(const ::mvccpb::KeyValue& kv, size_t strip) {
  return {.key = kv.key().substr(std::min(strip, kv.key().size())),
          .value = kv.value(),
          .create_revision = StoreRevision(kv.create_revision()),
          .mod_revision = StoreRevision(kv.mod_revision()),
          .version = kv.version()};
}

// The etcd range of the keys starting with `prefix`: [key, end), where an end
// of "\0" means no upper bound (and the empty prefix starts at "\0").
struct PrefixSpan {
  std::string key;
  std::string end;
};
PrefixSpan SpanOf(const std::string& prefix) {
  return {.key = prefix.empty() ? std::string(1, '\0') : prefix, .end = RangeEnd(prefix)};
}

// One listing (EtcdRegistryStore::ListPages): plans sub-ranges of at most
// `max_keys` keys with count-only Ranges at one revision, then reads them.
class Lister {
 public:
  static constexpr int64_t kFirstPage = 1000;

  Lister(pb::KV::Stub& kv, absl::Duration timeout, NoteFn note, int64_t max_keys, int parallelism,
         size_t strip)
      : kv_(kv),
        timeout_(timeout),
        note_(std::move(note)),
        max_keys_(std::max<int64_t>(1, max_keys)),
        parallelism_(std::max(1, parallelism)),
        strip_(strip) {}

  // Returns the etcd revision read at.
  absl::StatusOr<int64_t> Run(const std::string& prefix,
                              const RegistryStore::PageCallback& on_page) {
    // A small list is read by this first call; a large one is counted by it.
    const PrefixSpan all = SpanOf(prefix);
    pb::RangeRequest request;
    request.set_key(all.key);
    request.set_range_end(all.end);
    request.set_limit(std::min<int64_t>(max_keys_, kFirstPage));
    PPE_ASSIGN_OR_RETURN(pb::RangeResponse first, RangeCall(kv_, request, timeout_, note_));
    revision_ = first.header().revision();  // every further read is at this revision
    if (!first.more()) {
      if (first.kvs().empty()) return revision_;
      std::vector<KeyValue> page;
      page.reserve(first.kvs_size());
      for (const ::mvccpb::KeyValue& kv : first.kvs()) page.push_back(ToKeyValue(kv, strip_));
      if (absl::Status s = on_page(page); !s.ok()) return s;
      return revision_;
    }
    const int64_t count = first.count();
    first = pb::RangeResponse();
    if (absl::Status planned = Plan(prefix, count); !planned.ok()) return planned;
    return Read(on_page);
  }

 private:
  struct Span {
    std::string key;
    std::string end;
    int64_t count = 0;
  };

  absl::StatusOr<pb::RangeResponse> At(pb::RangeRequest request) {
    request.set_revision(revision_);
    return RangeCall(kv_, request, timeout_, note_);
  }

  // Counts, at the listing's revision, of the key `prefix` itself ([0]) and
  // of the keys starting with prefix + b ([1 + b]) for every byte b:
  // count-only Ranges batched into read-only Txns (served like Ranges,
  // without a raft proposal; at most etcd's default --max-txn-ops of 128
  // each), the Txns in parallel. Walks the keys under `prefix` once.
  absl::StatusOr<std::vector<int64_t>> Fanout(const std::string& prefix) {
    constexpr int kCounts = 257;
    constexpr int kTxns = 3;
    constexpr int kPerTxn = (kCounts + kTxns - 1) / kTxns;
    std::vector<int64_t> counts(kCounts, 0);
    std::vector<absl::Status> failures(kTxns);
    std::vector<std::thread> workers;
    for (int t = 0; t < kTxns; ++t) {
      workers.emplace_back([&, t] {
        pb::TxnRequest request;
        std::vector<int> slots;
        for (int i = t * kPerTxn; i < std::min(kCounts, (t + 1) * kPerTxn); ++i) {
          PrefixSpan span;
          if (i == 0) {
            if (prefix.empty()) continue;  // no empty key
            span = {.key = prefix, .end = prefix + '\0'};
          } else {
            span = SpanOf(prefix + static_cast<char>(i - 1));
          }
          pb::RangeRequest* range = request.add_success()->mutable_request_range();
          range->set_key(span.key);
          range->set_range_end(span.end);
          range->set_count_only(true);
          range->set_revision(revision_);
          slots.push_back(i);
        }
        absl::StatusOr<pb::TxnResponse> response = ReadTxnCall(kv_, request, timeout_, note_);
        if (!response.ok()) {
          failures[t] = response.status();
          return;
        }
        if (response->responses_size() != static_cast<int>(slots.size())) {
          failures[t] = absl::InternalError("etcd list: a count Txn answered too few ranges");
          return;
        }
        for (size_t i = 0; i < slots.size(); ++i) {
          counts[slots[i]] = response->responses(i).response_range().count();
        }
      });
    }
    for (std::thread& w : workers) w.join();
    for (const absl::Status& failure : failures) {
      if (!failure.ok()) return failure;
    }
    return counts;
  }

  // Appends to spans_, in key order, sub-ranges of at most max_keys_ keys
  // covering the `count` keys that start with `prefix`.
  absl::Status Plan(const std::string& prefix, int64_t count) {
    if (count <= max_keys_) {
      const PrefixSpan span = SpanOf(prefix);
      spans_.push_back({.key = span.key, .end = span.end, .count = count});
      return absl::OkStatus();
    }
    PPE_ASSIGN_OR_RETURN(std::vector<int64_t> fanout, Fanout(prefix));
    return Split(prefix, count, fanout);
  }

  // Plan's second half, given the prefix's Fanout.
  absl::Status Split(const std::string& prefix, int64_t count, const std::vector<int64_t>& fanout) {
    if (fanout[0] > 0) {
      spans_.push_back({.key = prefix, .end = prefix + '\0', .count = fanout[0]});
    }
    for (int b = 0; b < 256; ++b) {
      const int64_t n = fanout[1 + b];
      if (n == 0) continue;
      const std::string child = prefix + static_cast<char>(b);
      if (n == count) {  // every key shares more than `child`, maybe
        PPE_ASSIGN_OR_RETURN(bool skipped, SplitShared(child, n));
        if (skipped) continue;
      }
      if (absl::Status planned = Plan(child, n); !planned.ok()) return planned;
    }
    return absl::OkStatus();
  }

  // When the `count` keys under `child` share a longer prefix, splits that
  // instead (true). The candidates are the first key's prefixes, longest
  // first: the Fanout of each walks only the keys under it, few until the
  // one that holds all `count`, whose Fanout is the split's.
  absl::StatusOr<bool> SplitShared(const std::string& child, int64_t count) {
    const PrefixSpan span = SpanOf(child);
    pb::RangeRequest request;
    request.set_key(span.key);
    request.set_range_end(span.end);
    request.set_keys_only(true);
    request.set_limit(1);
    PPE_ASSIGN_OR_RETURN(pb::RangeResponse response, At(std::move(request)));
    if (response.kvs().empty()) return absl::InternalError("etcd list: a counted range is empty");
    const std::string first = response.kvs(0).key();
    for (size_t length = first.size(); length > child.size(); --length) {
      const std::string shared = first.substr(0, length);
      PPE_ASSIGN_OR_RETURN(std::vector<int64_t> fanout, Fanout(shared));
      int64_t n = 0;
      for (int64_t c : fanout) n += c;
      if (n == count) {
        if (absl::Status split = Split(shared, count, fanout); !split.ok()) return split;
        return true;
      }
    }
    return false;
  }

  // Reads the planned sub-ranges (adjacent ones together up to max_keys_),
  // parallelism_ ahead, and hands them to `on_page` in key order.
  absl::StatusOr<int64_t> Read(const RegistryStore::PageCallback& on_page) {
    std::vector<Span> reads;
    for (Span& span : spans_) {
      if (!reads.empty() && reads.back().count + span.count <= max_keys_) {
        reads.back().end = std::move(span.end);  // no keys between them at this revision
        reads.back().count += span.count;
      } else {
        reads.push_back(std::move(span));
      }
    }
    spans_.clear();
    auto read = [this](const Span& span) -> absl::StatusOr<std::vector<KeyValue>> {
      pb::RangeRequest request;
      request.set_key(span.key);
      request.set_range_end(span.end);
      PPE_ASSIGN_OR_RETURN(pb::RangeResponse response, At(std::move(request)));
      if (response.kvs_size() != span.count) {
        return absl::InternalError(absl::StrCat("etcd list: a sub-range counted ", span.count,
                                                " keys read ", response.kvs_size()));
      }
      std::vector<KeyValue> page;
      page.reserve(response.kvs_size());
      for (const ::mvccpb::KeyValue& kv : response.kvs()) page.push_back(ToKeyValue(kv, strip_));
      return page;
    };
    std::deque<std::future<absl::StatusOr<std::vector<KeyValue>>>> ahead;
    size_t next = 0;
    while (next < reads.size() || !ahead.empty()) {
      while (next < reads.size() && ahead.size() < static_cast<size_t>(parallelism_)) {
        ahead.push_back(std::async(std::launch::async, read, std::cref(reads[next++])));
      }
      absl::StatusOr<std::vector<KeyValue>> page = ahead.front().get();
      ahead.pop_front();
      if (!page.ok()) return page.status();  // ~future waits for the reads in flight
      if (absl::Status s = on_page(*page); !s.ok()) return s;
    }
    return revision_;
  }

  pb::KV::Stub& kv_;
  const absl::Duration timeout_;
  const NoteFn note_;
  const int64_t max_keys_;
  const int parallelism_;
  const size_t strip_;
  int64_t revision_ = 0;
  std::vector<Span> spans_;
};

}  // namespace

struct EtcdRegistryStore::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
};

// One watch: a thread that holds an etcd Watch stream open, re-opening it
// after a member fails, and calls the callback once per revision.
struct EtcdRegistryStore::WatchState {
  std::shared_ptr<Stubs> stubs;
  std::string key;        // etcd range [key, range_end)
  std::string range_end;  //
  size_t strip = 0;       // length of the store prefix to strip from keys
  WatchCallback callback;
  absl::Duration timeout;
  // The etcd revision the next stream starts at (one below the first wanted,
  // see the header) and the first etcd revision to deliver.
  int64_t start = 0;
  int64_t first_wanted = 0;

  std::atomic<bool> cancelled{false};     // by the handle: no more callbacks
  std::atomic<bool> store_closed{false};  // by the store: CANCELLED, then stop
  absl::Mutex mu;
  grpc::ClientContext* context ABSL_GUARDED_BY(mu) = nullptr;
  bool created ABSL_GUARDED_BY(mu) = false;
  bool wake ABSL_GUARDED_BY(mu) = false;

  void Interrupt(bool by_store) {
    (by_store ? store_closed : cancelled).store(true);
    absl::MutexLock lock(&mu);
    wake = true;
    if (context != nullptr) context->TryCancel();
  }

  bool WaitCreated(absl::Duration within) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithTimeout(absl::Condition(&created), within);
  }

  void Deliver(const WatchResponse& response) {
    if (!cancelled.load()) callback(response);
  }

  // Returns true when the watch is over (terminal response or cancelled).
  bool Stream();
  void Run();
};

bool EtcdRegistryStore::WatchState::Stream() {
  grpc::ClientContext context;
  // Fail the stream when its member loses the raft leader, rather than
  // silently stop delivering (clientv3's WithRequireLeader).
  context.AddMetadata("hasleader", "true");
  {
    absl::MutexLock lock(&mu);
    if (cancelled.load() || store_closed.load()) return true;
    this->context = &context;
  }
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream =
      stubs->watch->Watch(&context);
  pb::WatchRequest request;
  pb::WatchCreateRequest* create = request.mutable_create_request();
  create->set_key(key);
  create->set_range_end(range_end);
  create->set_start_revision(start);
  bool done = false;
  if (stream->Write(request)) {
    pb::WatchResponse response;
    while (!done && stream->Read(&response)) {
      if (response.created()) {
        absl::MutexLock lock(&mu);
        created = true;
      }
      if (response.compact_revision() > 0 || response.canceled()) {
        absl::MutexLock lock(&mu);
        created = true;  // the watch exists; its end is reported through the callback
      }
      if (response.compact_revision() > 0) {
        Deliver({.status = internal::CompactedError(StoreRevision(response.compact_revision())),
                 .compact_revision = StoreRevision(response.compact_revision()),
                 .events = {}});
        done = true;
        break;
      }
      if (response.canceled()) {
        Deliver({.status = absl::UnknownError(
                     absl::StrCat("etcd cancelled the watch: ", response.cancel_reason())),
                 .events = {}});
        done = true;
        break;
      }
      WatchResponse batch;
      auto flush = [&] {
        if (batch.events.empty()) return;
        Deliver(batch);
        start = batch.revision + 1;  // its etcd revision
        first_wanted = start + 1;
        batch = WatchResponse();
      };
      for (const ::mvccpb::Event& event : response.events()) {
        const ::mvccpb::KeyValue& kv = event.kv();
        if (kv.mod_revision() < first_wanted) continue;
        if (!batch.events.empty() && StoreRevision(kv.mod_revision()) != batch.revision) flush();
        batch.revision = StoreRevision(kv.mod_revision());
        batch.events.push_back(
            {.type = event.type() == ::mvccpb::Event::DELETE ? EventType::kDelete : EventType::kPut,
             .kv = {.key = kv.key().substr(std::min(strip, kv.key().size())),
                    .value = kv.value(),
                    .create_revision = StoreRevision(kv.create_revision()),
                    .mod_revision = StoreRevision(kv.mod_revision()),
                    .version = kv.version()}});
      }
      flush();
      if (cancelled.load()) break;
    }
  }
  if (done) context.TryCancel();
  stream->Finish().IgnoreError();
  absl::MutexLock lock(&mu);
  this->context = nullptr;
  return done || cancelled.load();
}

void EtcdRegistryStore::WatchState::Run() {
  absl::Duration backoff = absl::Milliseconds(20);
  while (!Stream()) {
    if (store_closed.load()) {
      Deliver({.status = absl::CancelledError("etcd store closed"), .events = {}});
      return;
    }
    // The stream broke (member gone, no leader): wait a little, then resume
    // from the last delivered revision on whichever member answers.
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(absl::Condition(&wake), backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

namespace {

class EtcdWatchHandle final : public WatchHandle {
 public:
  EtcdWatchHandle(std::shared_ptr<EtcdRegistryStore::WatchState> state, std::thread thread)
      : state_(std::move(state)), thread_(std::move(thread)) {}
  ~EtcdWatchHandle() override {
    state_->Interrupt(/*by_store=*/false);
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // inside the callback: the thread ends by itself
    } else {
      thread_.join();
    }
  }

 private:
  std::shared_ptr<EtcdRegistryStore::WatchState> state_;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdRegistryStore>> EtcdRegistryStore::Connect(Options options) {
  PPE_ASSIGN_OR_RETURN(std::string target, ChannelTarget(options.endpoints));
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!options.ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    PPE_ASSIGN_OR_RETURN(std::string ca, ReadFile(options.ca_file));
    ssl.pem_root_certs = ca;
    if (!options.cert_file.empty() || !options.key_file.empty()) {
      PPE_ASSIGN_OR_RETURN(std::string cert, ReadFile(options.cert_file));
      PPE_ASSIGN_OR_RETURN(std::string key, ReadFile(options.key_file));
      ssl.pem_cert_chain = cert;
      ssl.pem_private_key = key;
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(R"({"loadBalancingConfig":[{"round_robin":{}}]})");
  args.SetMaxReceiveMessageSize(256 << 20);
  if (!options.ca_file.empty() && absl::StartsWith(target, "ipv4:")) {
    // One name checked in every member's certificate; else gRPC checks the
    // target's whole "a:p,b:p" list as the host name and no certificate fits.
    std::string name = options.tls_server_name;
    if (name.empty()) {
      absl::string_view first = absl::string_view(target).substr(5);
      name = std::string(first.substr(0, first.find(':')));
    }
    args.SetSslTargetNameOverride(name);
  }
  // Notice a member that stopped answering (SIGSTOP, partition) on an idle
  // watch stream. etcd refuses pings more often than every 5 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  auto stubs = std::make_shared<Stubs>();
  stubs->channel = grpc::CreateCustomChannel(target, credentials, args);
  stubs->kv = pb::KV::NewStub(stubs->channel);
  stubs->watch = pb::Watch::NewStub(stubs->channel);
  std::unique_ptr<EtcdRegistryStore> store(new EtcdRegistryStore(std::move(options), stubs));
  // One read proves a member answers. Its failure names the members and the
  // TLS settings: a refused handshake says little by itself (etcd with
  // --client-cert-auth closes the connection of a client without a certificate).
  absl::StatusOr<RangeResult> probe = store->ReadKey(
      store->options_.prefix.empty() ? std::string(1, '\0') : store->options_.prefix);
  if (!probe.ok()) {
    const Options& o = store->options_;
    std::string tls = "plain text";
    if (!o.ca_file.empty()) {
      tls = absl::StrCat("TLS trusting CA ", o.ca_file, ", ",
                         o.cert_file.empty() ? "no client certificate"
                                             : absl::StrCat("client certificate ", o.cert_file));
    }
    return absl::Status(probe.status().code(),
                        absl::StrCat("etcd: no member of ", absl::StrJoin(o.endpoints, ","),
                                     " answered (", tls, "): ", probe.status().message()));
  }
  return store;
}

std::shared_ptr<grpc::Channel> EtcdRegistryStore::channel() const { return stubs_->channel; }

EtcdRegistryStore::EtcdRegistryStore(Options options, std::shared_ptr<Stubs> stubs)
    : options_(std::move(options)), stubs_(std::move(stubs)) {}

EtcdRegistryStore::~EtcdRegistryStore() {
  absl::MutexLock lock(&mu_);
  for (const std::weak_ptr<WatchState>& weak : watches_) {
    if (std::shared_ptr<WatchState> state = weak.lock()) state->Interrupt(/*by_store=*/true);
  }
}

void EtcdRegistryStore::SeeRevision(int64_t etcd_revision) {
  int64_t seen = last_etcd_revision_.load();
  while (etcd_revision > seen && !last_etcd_revision_.compare_exchange_weak(seen, etcd_revision)) {
  }
}

absl::StatusOr<RangeResult> EtcdRegistryStore::ReadKey(const std::string& key) {
  pb::RangeRequest request;
  request.set_key(key);
  PPE_ASSIGN_OR_RETURN(pb::RangeResponse response,
                       RangeCall(*stubs_->kv, request, options_.timeout,
                                 [this](const grpc::Status& s) { NoteAnswer(s); }));
  SeeRevision(response.header().revision());
  RangeResult result{.kvs = {}, .revision = StoreRevision(response.header().revision())};
  for (const ::mvccpb::KeyValue& kv : response.kvs()) {
    result.kvs.push_back(ToKeyValue(kv, options_.prefix.size()));
  }
  return result;
}

absl::StatusOr<std::optional<KeyValue>> EtcdRegistryStore::Get(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  PPE_ASSIGN_OR_RETURN(RangeResult range, ReadKey(options_.prefix + std::string(key)));
  if (range.kvs.empty()) return std::nullopt;
  return std::move(range.kvs[0]);
}

absl::StatusOr<int64_t> EtcdRegistryStore::ListPages(absl::string_view prefix,
                                                     const PageCallback& on_page) {
  Lister lister(
      *stubs_->kv, options_.timeout, [this](const grpc::Status& s) { NoteAnswer(s); },
      options_.list_page_size, options_.list_parallelism, options_.prefix.size());
  PPE_ASSIGN_OR_RETURN(int64_t revision,
                       lister.Run(options_.prefix + std::string(prefix), on_page));
  SeeRevision(revision);
  return StoreRevision(revision);
}

absl::StatusOr<RangeResult> EtcdRegistryStore::List(absl::string_view prefix) {
  RangeResult result;
  absl::StatusOr<int64_t> revision = ListPages(prefix, [&](std::vector<KeyValue>& page) {
    if (result.kvs.empty()) {
      result.kvs = std::move(page);
    } else {
      std::move(page.begin(), page.end(), std::back_inserter(result.kvs));
    }
    return absl::OkStatus();
  });
  if (!revision.ok()) return revision.status();
  result.revision = *revision;
  return result;
}

absl::StatusOr<TxnResult> EtcdRegistryStore::Txn(const ppe::store::Txn& txn) {
  PPE_RETURN_IF_ERROR(internal::ValidateTxn(txn));
  pb::TxnRequest request;
  for (const Compare& c : txn.compares) {
    pb::Compare* out = request.add_compare();
    out->set_key(options_.prefix + c.key);
    switch (c.result) {
      case Compare::Result::kEqual:
        out->set_result(pb::Compare::EQUAL);
        break;
      case Compare::Result::kNotEqual:
        out->set_result(pb::Compare::NOT_EQUAL);
        break;
      case Compare::Result::kGreater:
        out->set_result(pb::Compare::GREATER);
        break;
      case Compare::Result::kLess:
        out->set_result(pb::Compare::LESS);
        break;
    }
    switch (c.target) {
      case Compare::Target::kValue:
        out->set_target(pb::Compare::VALUE);
        out->set_value(c.value);
        break;
      case Compare::Target::kVersion:
        out->set_target(pb::Compare::VERSION);
        out->set_version(c.number);
        break;
      case Compare::Target::kCreateRevision:
        out->set_target(pb::Compare::CREATE);
        out->set_create_revision(EtcdRevision(c.number));
        break;
      case Compare::Target::kModRevision:
        out->set_target(pb::Compare::MOD);
        out->set_mod_revision(EtcdRevision(c.number));
        break;
    }
  }
  auto add_ops = [this](const std::vector<Op>& ops,
                        google::protobuf::RepeatedPtrField<pb::RequestOp>* out) {
    for (const Op& op : ops) {
      std::string key = options_.prefix + op.key;
      switch (op.type) {
        case Op::Type::kPut: {
          pb::PutRequest* put = out->Add()->mutable_request_put();
          put->set_key(std::move(key));
          put->set_value(op.value);
          break;
        }
        case Op::Type::kDelete:
          out->Add()->mutable_request_delete_range()->set_key(std::move(key));
          break;
        case Op::Type::kDeletePrefix: {
          pb::DeleteRangeRequest* del = out->Add()->mutable_request_delete_range();
          del->set_range_end(RangeEnd(key));
          del->set_key(std::move(key));
          break;
        }
      }
    }
  };
  add_ops(txn.success, request.mutable_success());
  add_ops(txn.failure, request.mutable_failure());

  pb::TxnResponse response;
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + CallTimeout());
  // Not retried: a write that failed in flight may have been applied.
  grpc::Status status = stubs_->kv->Txn(&context, request, &response);
  NoteAnswer(status);
  if (!status.ok()) return FromGrpc(status, "txn");
  SeeRevision(response.header().revision());
  TxnResult result{.succeeded = response.succeeded(),
                   .revision = StoreRevision(response.header().revision())};
  if (!(result.succeeded ? txn.success : txn.failure).empty()) MaybeAutoCompact(result.revision);
  return result;
}

void EtcdRegistryStore::MaybeAutoCompact(int64_t store_revision) {
  const int64_t keep = options_.history_revisions;
  if (keep <= 0) return;
  const int64_t target = store_revision - keep;
  int64_t done = auto_compacted_.load();
  // Compact in steps of a tenth of the window, not on every write.
  if (target <= 0 || target - done < std::max<int64_t>(1, keep / 10)) return;
  if (!auto_compacted_.compare_exchange_strong(done, target)) return;  // another thread does it
  // Best effort: another replica may have compacted further already.
  Compact(target).IgnoreError();
}

absl::Status EtcdRegistryStore::Compact(int64_t revision) {
  if (revision <= 0) return absl::OkStatus();
  pb::CompactionRequest request;
  // etcd keeps watches that start at its compact revision c; a watch from
  // store revision r starts etcd at r (see Watch), so etcd refuses it exactly
  // when r < c = EtcdRevision(revision), i.e. r <= revision.
  request.set_revision(EtcdRevision(revision));
  pb::CompactionResponse response;
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + options_.timeout);
  grpc::Status status = stubs_->kv->Compact(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE) {
    if (absl::StrContains(status.error_message(), "compacted")) return absl::OkStatus();  // done
    return absl::OutOfRangeError(
        absl::StrCat("compact: revision ", revision, " is beyond the current revision"));
  }
  if (!status.ok()) return FromGrpc(status, "compact");
  SeeRevision(response.header().revision());
  return absl::OkStatus();
}

absl::Duration EtcdRegistryStore::CallTimeout() const {
  return answering_.load() ? options_.timeout
                           : std::min(options_.timeout, options_.timeout_while_unanswered);
}

void EtcdRegistryStore::NoteAnswer(const grpc::Status& status) {
  if (status.ok()) {
    answering_.store(true);
  } else if (IsEtcdDeadline(status) || status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    answering_.store(false);
    unanswered_calls_.fetch_add(1);
  }
}

int64_t EtcdRegistryStore::CurrentRevision() {
  pb::RangeRequest request;
  request.set_key(options_.prefix.empty() ? std::string(1, '\0') : options_.prefix);
  request.set_count_only(true);
  pb::RangeResponse response;
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + options_.timeout);
  if (stubs_->kv->Range(&context, request, &response).ok()) {
    SeeRevision(response.header().revision());
  }
  return StoreRevision(last_etcd_revision_.load());
}

absl::StatusOr<std::unique_ptr<WatchHandle>> EtcdRegistryStore::Watch(absl::string_view prefix,
                                                                      int64_t from_revision,
                                                                      WatchCallback callback) {
  if (from_revision < 0) return absl::InvalidArgumentError("negative watch revision");
  if (!callback) return absl::InvalidArgumentError("watch without a callback");
  auto state = std::make_shared<WatchState>();
  state->stubs = stubs_;
  state->key = options_.prefix + std::string(prefix);
  state->range_end = RangeEnd(state->key);
  if (state->key.empty()) state->key.assign(1, '\0');
  state->strip = options_.prefix.size();
  state->callback = std::move(callback);
  state->timeout = options_.timeout;
  // Store revision r is etcd revision r + 1; start one below (see header).
  // "From now" is from the revision a quorum read sees now, not from the
  // revision of whichever member the stream lands on (it may lag).
  if (from_revision == 0) {
    PPE_ASSIGN_OR_RETURN(RangeResult now, ReadKey(state->key));
    from_revision = now.revision + 1;
  }
  state->start = from_revision;
  state->first_wanted = from_revision + 1;
  std::thread thread([state] { state->Run(); });
  auto handle = std::make_unique<EtcdWatchHandle>(state, std::move(thread));
  if (!state->WaitCreated(options_.timeout)) {
    return absl::UnavailableError("etcd watch: no member accepted the watch in time");
  }
  absl::MutexLock lock(&mu_);
  std::erase_if(watches_, [](const std::weak_ptr<WatchState>& w) { return w.expired(); });
  watches_.push_back(state);
  return handle;
}

}  // namespace ppe::store
