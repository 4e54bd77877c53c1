#include "ppe-service/resolver/resolver_engine.h"

#include <arpa/inet.h>
#include "absl/strings/string_view.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ppe-service/common/log.h"
#include "ppe-service/dns/client_subnet.h"
#include "ppe-service/dns/cohort_client.h"

namespace ppe::resolver {

using ppe::v1::ResolveRequest;
using ppe::v1::ResolveResponse;
using Kind = dns::ParsedName::Kind;

struct ResolverEngine::Query {
  ResolveRequest request;
  const ppe::config::v1::Service* service = nullptr;
  uint32_t scope = 0;
  bool want_v4 = false;
  bool want_v6 = false;
  ResolveResponse response;
  Done done;
  std::atomic<bool> answered{false};
  absl::Time start = absl::Now();
  LatencyHistogram* latency = nullptr;

  // The first of allocation and timer to claim the query builds the answer.
  bool Claim() { return !answered.exchange(true); }
  void Deliver() {
    if (latency != nullptr) latency->Observe(absl::Now() - start);
    done(std::move(response));
  }
  void Finish() {
    if (Claim()) Deliver();
  }
};

namespace {

bool IsV6(const std::string& address) { return address.find(':') != std::string::npos; }

ppe::v1::Record MakeRecord(absl::string_view qname, absl::string_view qtype, std::string content,
                           uint32_t ttl, uint32_t scope) {
  ppe::v1::Record r;
  r.set_qname(std::string(qname));
  r.set_qtype(std::string(qtype));
  r.set_content(std::move(content));
  r.set_ttl(ttl);
  r.set_scope_mask(scope);
  return r;
}

// How long the shared pool's address list is reused before it is read again.
constexpr absl::Duration kSharedPoolRefresh = absl::Seconds(1);

}  // namespace

ResolverEngine::Options ResolverEngine::OptionsFromConfig(
    const ppe::config::v1::PpeConfig& config) {
  Options o{
      .zones = {config.zones().begin(), config.zones().end()},
      .ttl = config.answers().ttl(),
      .fallback_ttl = config.answers().fallback_ttl(),
      .allocation_wait = absl::Milliseconds(config.answers().allocation_wait_ms()),
      .time_buckets_per_day = config.cpt().time_buckets_per_day(),
      .registrations_per_minute = static_cast<double>(config.limits().registrations_per_minute()),
      .registrations_burst = static_cast<double>(config.limits().registrations_burst())};
  const auto& c = config.cohorts();
  if (c.min_requests() > 0) o.cohorts.min_requests = c.min_requests();
  if (c.buckets() > 0) o.cohorts.buckets = static_cast<int>(c.buckets());
  uint32_t bucket_ms = c.bucket_ms() > 0 ? c.bucket_ms() : config.scaler().bucket_ms();
  if (bucket_ms > 0) o.cohorts.bucket = absl::Milliseconds(bucket_ms);
  if (c.probe_window_ms() > 0) o.cohorts.probe_window = absl::Milliseconds(c.probe_window_ms());
  if (c.max_tracked() > 0) o.cohorts.max_tracked = c.max_tracked();
  return o;
}

ResolverEngine::ResolverEngine(Options options, const cpt::CptCodec& codec,
                               const cpt::RegionTable& regions, registry::Registry& registry,
                               vm::VmManager& vms, TimerQueue& timers, const Clock& clock,
                               scaler::DemandTracker* demand)
    : options_(std::move(options)),
      codec_(codec),
      regions_(regions),
      registry_(registry),
      vms_(vms),
      timers_(timers),
      clock_(clock),
      registrations_(options_.registrations_per_minute, options_.registrations_burst),
      demand_(demand),
      cohorts_(options_.cohorts) {
  for (const auto& z : options_.zones) {
    std::vector<std::string> services;
    for (const auto& s : z.services()) services.push_back(s.name());
    zones_.push_back(Zone{dns::NameParser(z.name(), services), &z});

    ppe::v1::ZoneInfo* info = zones_response_.add_zones();
    info->set_id(z.id());
    info->set_name(z.name());
    info->set_serial(z.soa().serial());
    const auto& soa = z.soa();
    *info->add_apex_records() =
        MakeRecord(z.name(), "SOA",
                   absl::StrFormat("%s %s %d %d %d %d %d", soa.mname(), soa.rname(), soa.serial(),
                                   soa.refresh(), soa.retry(), soa.expire(), soa.minimum()),
                   z.apex_ttl(), 0);
    for (const auto& ns : z.nameservers()) {
      *info->add_apex_records() = MakeRecord(z.name(), "NS", ns, z.apex_ttl(), 0);
    }
    for (const auto& glue : z.nameserver_addresses()) {
      for (const std::string& a : glue.addresses()) {
        std::string type = a.find(':') == std::string::npos ? "A" : "AAAA";
        *info->add_static_records() = MakeRecord(glue.name(), type, a, z.apex_ttl(), 0);
      }
    }
    for (const auto& s : z.services()) {
      ppe::v1::ServiceInfo* si = info->add_services();
      si->set_name(s.name());
      si->mutable_fallback_addresses()->CopyFrom(s.fallback_addresses());
      si->set_fallback_ttl(options_.fallback_ttl);
    }
  }
}

ResolverEngine::Derived ResolverEngine::DeriveAttributes(const ResolveRequest& request,
                                                         const std::string& service) const {
  Derived d;
  // The ECS source prefix (pdns's real-remote) when the client sent one with a
  // source length above 0; for source /0 (RFC 7871: "no tailoring") and
  // without a usable real-remote, the resolver's own address.
  absl::StatusOr<cpt::Prefix> ecs = cpt::Prefix::Parse(request.real_remote());
  bool source_zero = ecs.ok() && !request.real_remote().empty() && ecs->length == 0;
  absl::StatusOr<cpt::Prefix> client = ecs;
  if (!ecs.ok() || request.real_remote().empty() || source_zero) {
    client = cpt::Prefix::Parse(request.remote());
  }
  if (client.ok()) {
    // The scope: the prefix the region table maps wholly to this region, never
    // wider than needed and never longer than the client's source prefix.
    cpt::RegionTable::Match m =
        regions_.LookupWithScope(*client, client->v4 ? kDefaultScopeV4 : kDefaultScopeV6);
    d.attributes.region = m.region;
    d.scope = source_zero ? 0 : static_cast<uint32_t>(std::min(m.scope, client->length));
  } else {
    d.attributes.region = "unknown";
    d.scope = dns::ClientScope(request.real_remote(), request.remote());
  }
  absl::CivilMinute now = absl::ToCivilMinute(clock_.Now(), absl::UTCTimeZone());
  int minute_of_day = now.hour() * 60 + now.minute();
  d.bucket = dns::TimeBucketIndex(minute_of_day, options_.time_buckets_per_day);
  d.attributes.time_bucket = absl::StrCat("tod", d.bucket);
  return d;
}

void ResolverEngine::Resolve(const ResolveRequest& request, Done done) {
  stats_.lookups.fetch_add(1, std::memory_order_relaxed);
  auto q = std::make_shared<Query>();
  q->latency = &stats_.latency;
  q->done = std::move(done);
  const std::string& qtype = request.qtype();
  bool any = qtype == "ANY";

  dns::ParsedName parsed;
  const Zone* zone = nullptr;
  for (const Zone& z : zones_) {
    parsed = z.parser.Parse(request.qname());
    if (parsed.kind != Kind::kOutside) {
      zone = &z;
      break;
    }
  }
  if (zone == nullptr) {
    q->response.set_source(ResolveResponse::SOURCE_NONE);
    return q->Finish();
  }
  if (parsed.kind == Kind::kOther) {  // nothing but the nameservers' addresses lives here
    q->response.set_source(ResolveResponse::SOURCE_NONE);
    for (const ppe::v1::ZoneInfo& info : zones_response_.zones()) {
      if (info.id() != zone->config->id()) continue;
      for (const auto& r : info.static_records()) {
        if (absl::EqualsIgnoreCase(r.qname(), request.qname()) && (any || r.qtype() == qtype)) {
          *q->response.add_records() = r;
          q->response.mutable_records()->rbegin()->set_qname(request.qname());
          q->response.set_source(ResolveResponse::SOURCE_STATIC);
        }
      }
    }
    return q->Finish();
  }
  if (parsed.kind == Kind::kApex) {
    q->response.set_source(ResolveResponse::SOURCE_STATIC);
    for (const ppe::v1::ZoneInfo& info : zones_response_.zones()) {
      if (info.id() != zone->config->id()) continue;
      for (const auto& r : info.apex_records()) {
        if (any || r.qtype() == qtype) {
          *q->response.add_records() = r;
          q->response.mutable_records()->rbegin()->set_qname(request.qname());
        }
      }
    }
    return q->Finish();
  }

  q->want_v4 = any || qtype == "A";
  q->want_v6 = any || qtype == "AAAA";
  if (!q->want_v4 && !q->want_v6) {  // no other types live at service names
    q->response.set_source(ResolveResponse::SOURCE_NONE);
    return q->Finish();
  }
  for (const auto& s : zone->config->services()) {
    if (s.name() == parsed.service) q->service = &s;
  }
  q->request = request;

  std::string client =
      CohortDemand::ClientKey(parsed.service, request.remote(), request.real_remote());
  if (parsed.kind == Kind::kTagged) {
    absl::StatusOr<std::string> tag = codec_.Parse(parsed.cpt_label);
    if (tag.ok() && registry_.IsActive(*tag)) {
      q->scope = 0;  // the answer depends on the name only
      // The untagged query just before it from this resolver and subnet was a
      // QNAME-minimisation probe, not demand.
      cohorts_.RecordTagged(client, clock_.Now());
      return AnswerProfile(std::move(q), *tag, std::nullopt);
    }
    // Forged, expired or never issued: answered as untagged, never registered.
    stats_.forged.fetch_add(1, std::memory_order_relaxed);
  }
  Derived derived = DeriveAttributes(request, parsed.service);
  q->scope = derived.scope;
  std::string cpt = codec_.Encode(derived.attributes);
  if (registry_.IsActive(cpt)) {
    if (!registry_.ReadyAddresses(cpt, q->service->name(), clock_.Now()).empty() || !q->want_v4) {
      if (cohort_observer_) {
        cohort_observer_(parsed.service, dns::CohortClient(request.real_remote(), request.remote()),
                         derived.bucket, cpt, q->scope);
      }
      return AnswerProfile(std::move(q), cpt, std::nullopt);
    }
    // A registered cohort with no ready VM: provisioned in the background
    // (limits apply), and answered from the shared pool now.
    if (demand_ != nullptr) demand_->Record(cpt, q->service->name());
    vms_.EnsureVm(cpt, q->service->name(), std::nullopt, [](absl::StatusOr<std::string>) {});
    AnswerShared(*q);
    return q->Finish();
  }
  // A cohort not registered: an untagged query never allocates a VM by itself.
  // It is answered from the shared pool and counted; the cohort is registered
  // once its demand is sustained (CohortDemand).
  if (q->want_v4) {
    std::string source = SourcePrefixKey(request.real_remote(), request.remote());
    for (CohortDemand::Due& due : cohorts_.RecordUntagged(client, source, cpt, q->service->name(),
                                                          derived.attributes, clock_.Now())) {
      Register(std::move(due));
    }
  }
  AnswerShared(*q);
  q->Finish();
}

void ResolverEngine::NoteProbe(const std::string& client) {
  cohorts_.RecordTagged(client, clock_.Now());
}

void ResolverEngine::Register(CohortDemand::Due due) {
  if (registry_.IsActive(due.cpt)) return;
  // Registrations stay rate-limited per source prefix (the last query's).
  if (!registrations_.Allow(due.source, clock_.Now())) {
    stats_.rate_limited.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  stats_.cohorts_registered.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("cohort {} ({}) has sustained untagged demand: registering it",
               cpt::CptCodec::Fingerprint(due.cpt), due.service);
  vms_.EnsureVm(due.cpt, due.service,
                vm::VmManager::Registration{.attributes = due.attributes, .origin = "dns"},
                [](absl::StatusOr<std::string>) {});
}

std::vector<std::string> ResolverEngine::SharedPool(const std::string& service) {
  absl::Time now = clock_.Now();
  absl::MutexLock lock(&shared_mu_);
  Shared& s = shared_[service];
  if (now - s.refreshed >= kSharedPoolRefresh) {
    s.addresses.clear();
    for (const registry::VmRecord& vm : registry_.Spares(service)) {
      if (vm.state == registry::VmState::kReady) s.addresses.push_back(vm.ip);
    }
    std::sort(s.addresses.begin(), s.addresses.end());
    s.refreshed = now;
  }
  return s.addresses;
}

void ResolverEngine::AnswerShared(Query& q) {
  std::vector<std::string> spares = SharedPool(q.service->name());
  if (spares.empty() || !q.want_v4) {
    q.response.set_source(ResolveResponse::SOURCE_FALLBACK);
    stats_.fallbacks.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::string> addresses(q.service->fallback_addresses().begin(),
                                       q.service->fallback_addresses().end());
    AddAddressRecords(q, addresses, options_.fallback_ttl);
    return;
  }
  q.response.set_source(ResolveResponse::SOURCE_SHARED);
  stats_.shared.fetch_add(1, std::memory_order_relaxed);
  AddAddressRecords(q, spares, options_.ttl);
}

void ResolverEngine::AnswerProfile(std::shared_ptr<Query> q, const std::string& cpt,
                                   std::optional<vm::VmManager::Registration> registration) {
  if (q->want_v4 && demand_ != nullptr) demand_->Record(cpt, q->service->name());
  std::vector<std::string> ready = registry_.ReadyAddresses(cpt, q->service->name(), clock_.Now());
  // VM addresses are IPv4: an AAAA query answers what is ready and allocates nothing.
  if (!ready.empty() || !q->want_v4) {
    q->response.set_source(ResolveResponse::SOURCE_POOL);
    stats_.from_pool.fetch_add(1, std::memory_order_relaxed);
    AddAddressRecords(*q, ready, options_.ttl);
    return q->Finish();
  }
  // No ready VM: allocate, and answer whichever comes first, the VM or the deadline.
  timers_.RunAfter(options_.allocation_wait, [this, q] {
    if (!q->Claim()) return;
    AnswerFallback(*q);
    q->Deliver();
  });
  vms_.EnsureVm(cpt, q->service->name(), std::move(registration),
                [this, q, cpt](absl::StatusOr<std::string> ip) {
                  if (!q->Claim()) return;
                  if (!ip.ok()) {
                    // The registry's store unreachable (etcd without quorum) is
                    // an outage worth a warning; limits and the like are not.
                    const bool outage =
                        absl::IsUnavailable(ip.status()) || absl::IsDeadlineExceeded(ip.status());
                    spdlog::log(outage ? spdlog::level::warn : spdlog::level::debug,
                                "no VM for profile {}: {}", cpt::CptCodec::Fingerprint(cpt),
                                ip.status().message());
                    AnswerFallback(*q);
                  } else {
                    std::vector<std::string> ready =
                        registry_.ReadyAddresses(cpt, q->service->name(), clock_.Now());
                    if (ready.empty()) ready.push_back(*ip);
                    q->response.set_source(ResolveResponse::SOURCE_ALLOCATED);
                    stats_.allocated.fetch_add(1, std::memory_order_relaxed);
                    AddAddressRecords(*q, ready, options_.ttl);
                  }
                  q->Deliver();
                });
}

void ResolverEngine::AddAddressRecords(Query& q, const std::vector<std::string>& addresses,
                                       uint32_t ttl) const {
  q.response.clear_records();
  for (const std::string& a : addresses) {
    bool v6 = IsV6(a);
    if (v6 ? !q.want_v6 : !q.want_v4) continue;
    *q.response.add_records() = MakeRecord(q.request.qname(), v6 ? "AAAA" : "A", a, ttl, q.scope);
  }
}

void ResolverEngine::AnswerFallback(Query& q) {
  q.response.set_source(ResolveResponse::SOURCE_FALLBACK);
  stats_.fallbacks.fetch_add(1, std::memory_order_relaxed);
  // A fallback is transient: scoped to the client, so pdns caches it nowhere.
  q.scope = dns::ClientScope(q.request.real_remote(), q.request.remote());
  std::vector<std::string> addresses(q.service->fallback_addresses().begin(),
                                     q.service->fallback_addresses().end());
  AddAddressRecords(q, addresses, options_.fallback_ttl);
}

}  // namespace ppe::resolver
