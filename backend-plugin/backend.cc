#include "backend-plugin/backend.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ppe-service/common/log.h"

#include <algorithm>

#include "ppe-service/cpt/cpt_check.h"
#include "ppe-service/dns/client_subnet.h"
#include "ppe-service/dns/cohort_client.h"

namespace ppe::plugin {

using Kind = dns::ParsedName::Kind;

std::string Backend::Handle(absl::string_view line) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<Request> req = ParseRequest(line);
  if (!req.ok()) {
    stats_.malformed.fetch_add(1, std::memory_order_relaxed);
    return ReplyFalse(absl::StrCat("ppe-backend: ", req.status().message()));
  }
  const std::string& m = req->method;
  if (m == "lookup") return Lookup(*req);
  if (m == "initialize") return ReplyTrue();
  if (m == "getAllDomainMetadata") return ReplyEmptyObject();
  if (m == "getDomainMetadata") return ReplyEmptyArray();

  std::shared_ptr<const ZoneCache::Snapshot> snap = zones_.Get();
  if (m == "getAllDomains") {
    std::vector<DomainInfo> domains;
    for (const auto& z : snap->zones) {
      domains.push_back({z.info.id(), z.info.name(), z.info.serial()});
    }
    return ReplyDomains(domains);
  }
  if (m == "getDomainInfo") {
    const ZoneCache::Zone* z = snap->FindByName(req->name);
    if (z == nullptr) return ReplyFalse();
    return ReplyDomain({z->info.id(), z->info.name(), z->info.serial()});
  }
  if (m == "list") {  // AXFR and the pdns API: the zone holds only its apex statically
    const ZoneCache::Zone* z = snap->FindByName(req->name);
    if (z == nullptr) return ReplyFalse();
    google::protobuf::RepeatedPtrField<ppe::v1::Record> all = z->info.apex_records();
    for (const auto& r : z->info.static_records()) *all.Add() = r;
    return ReplyRecords(all, z->info.id());
  }
  return ReplyFalse(absl::StrCat("ppe-backend: method '", m, "' is not supported"));
}

std::string Backend::Lookup(const Request& req) {
  stats_.lookups.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<const ZoneCache::Snapshot> snap = zones_.Get();
  dns::ParsedName parsed;
  const ZoneCache::Zone* zone = snap->Find(req.qname, parsed);
  if (zone == nullptr) return ReplyFalse();

  bool any = req.qtype == "ANY";
  if (parsed.kind == Kind::kOther) {  // only the nameservers' addresses live here
    google::protobuf::RepeatedPtrField<ppe::v1::Record> out;
    for (const auto& r : zone->info.static_records()) {
      if (absl::EqualsIgnoreCase(r.qname(), req.qname) && (any || r.qtype() == req.qtype)) {
        *out.Add() = r;
        out.rbegin()->set_qname(req.qname);
      }
    }
    if (out.empty()) return ReplyFalse();
    return ReplyRecords(out, zone->info.id());
  }
  if (parsed.kind == Kind::kApex) {
    google::protobuf::RepeatedPtrField<ppe::v1::Record> out;
    for (const auto& r : zone->info.apex_records()) {
      if (any || r.qtype() == req.qtype) *out.Add() = r;
    }
    for (auto& r : out) r.set_qname(req.qname);
    return ReplyRecords(out, zone->info.id());
  }
  // Service names hold address records only: SOA walks, NS checks and other
  // types are answered here without a round trip.
  if (!any && req.qtype != "A" && req.qtype != "AAAA") return ReplyFalse();

  if (table_ != nullptr) {
    std::string reply;
    if (AnswerLocally(*snap, *zone, req, parsed, reply)) return reply;
  }

  ppe::v1::ResolveRequest rr;
  rr.set_qname(req.qname);
  rr.set_qtype(req.qtype);
  rr.set_remote(req.remote);
  rr.set_local(req.local);
  rr.set_real_remote(req.real_remote);
  rr.set_zone_id(req.zone_id);
  stats_.forwarded.fetch_add(1, std::memory_order_relaxed);
  if (demand_ != nullptr && parsed.kind == Kind::kUntagged) {
    demand_->NoteUntaggedForward(ProbeClientKey(parsed.service, req), absl::Now());
  }
  absl::StatusOr<ppe::v1::ResolveResponse> resp = ppe_.Resolve(rr);
  if (!resp.ok()) return Fallback(*snap, *zone, req, parsed.service, resp.status().message());
  return ReplyRecords(resp->records(), zone->info.id());
}

// The PPE's key for one resolver and ECS subnet asking one service.
std::string Backend::ProbeClientKey(absl::string_view service, const Request& req) {
  return absl::StrCat(service, "|", req.remote, "|", req.real_remote);
}

bool Backend::AnswerLocally(const ZoneCache::Snapshot& snap, const ZoneCache::Zone& zone,
                            const Request& req, const dns::ParsedName& parsed, std::string& reply) {
  absl::Time now = absl::Now();
  AnswerTable::Mode mode = table_->mode(now);
  AnswerTable::Answer answer;
  bool found = false;
  bool tagged = parsed.kind == Kind::kTagged;
  if (tagged && !cpt::HasValidCheck(parsed.cpt_label)) {
    // Cannot be a CPT: answered as untagged, here, whatever the PPE's state. A
    // cohort the table does not know gets the fallback: no RPC, no registration.
    stats_.not_cpt.fetch_add(1, std::memory_order_relaxed);
    if (mode != AnswerTable::Mode::kOff) {
      found = table_->FindCohort(parsed.service, dns::CohortClient(req.real_remote, req.remote),
                                 now, answer);
    }
    if (!found) {
      reply = FallbackRecords(snap, zone, req, parsed.service);
      return true;
    }
  } else if (mode == AnswerTable::Mode::kOff) {
    return false;
  } else if (tagged) {
    found = table_->FindProfile(parsed.service, parsed.cpt_label, answer);
  } else {
    found = table_->FindCohort(parsed.service, dns::CohortClient(req.real_remote, req.remote), now,
                               answer);
  }
  if (!found) return false;
  uint32_t ttl = answer.ttl;
  if (mode == AnswerTable::Mode::kStale) {  // the PPE is away: keep answers short-lived
    if (const ppe::v1::ServiceInfo* svc = snap.Service(zone, parsed.service); svc != nullptr) {
      ttl = std::min(ttl, svc->fallback_ttl());
    }
  }
  bool want_v4 = req.qtype == "A" || req.qtype == "ANY";
  RecordsReply records(reply, zone.info.id());
  if (want_v4) {
    for (uint32_t ip : answer.v4) records.AddA(req.qname, ip, ttl, answer.scope);
    if (demand_ != nullptr) {
      demand_->Count(answer.cpt, parsed.service);
      if (tagged && demand_->ExpectingProbes()) {
        demand_->NoteTaggedAnswer(ProbeClientKey(parsed.service, req), now);
      }
    }
  }
  records.Finish();
  stats_.local.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::string Backend::Fallback(const ZoneCache::Snapshot& snap, const ZoneCache::Zone& zone,
                              const Request& req, const std::string& service,
                              absl::string_view why) {
  stats_.fallbacks.fetch_add(1, std::memory_order_relaxed);
  int64_t now = absl::GetCurrentTimeNanos();
  int64_t last = last_fallback_log_ns_.load(std::memory_order_relaxed);
  if (now - last > 1'000'000'000 &&
      last_fallback_log_ns_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    spdlog::warn("PPE unavailable ({}): answering fallback addresses ({} fallbacks so far)", why,
                 stats_.fallbacks.load(std::memory_order_relaxed));
  }
  return FallbackRecords(snap, zone, req, service);
}

std::string Backend::FallbackRecords(const ZoneCache::Snapshot& snap, const ZoneCache::Zone& zone,
                                     const Request& req, const std::string& service) {
  std::string out;
  RecordsReply records(out, zone.info.id());
  // A fallback is transient: scoped to the client, so pdns caches it nowhere.
  uint32_t scope = dns::ClientScope(req.real_remote, req.remote);
  if (const ppe::v1::ServiceInfo* svc = snap.Service(zone, service); svc != nullptr) {
    bool any = req.qtype == "ANY";
    for (const std::string& a : svc->fallback_addresses()) {
      absl::string_view type = a.find(':') == std::string::npos ? "A" : "AAAA";
      if (!any && type != req.qtype) continue;
      records.Add(type, req.qname, a, svc->fallback_ttl(), scope);
    }
  }
  records.Finish();
  return out;
}

}  // namespace ppe::plugin
