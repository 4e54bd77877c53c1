#pragma once

// The zone data the plugin's offline tests and fuzz target use: what a PPE
// configured like deploy/conf/ppe.conf.in would answer to ListZones.
#include "ppe/v1/resolver.pb.h"

namespace ppe::testing {

inline ppe::v1::ListZonesResponse TestZones() {
  ppe::v1::ListZonesResponse z;
  auto* zone = z.add_zones();
  zone->set_id(1);
  zone->set_name("cdn.example.test.");
  zone->set_serial(3);
  auto* soa = zone->add_apex_records();
  soa->set_qname("cdn.example.test.");
  soa->set_qtype("SOA");
  soa->set_content("ns1.cdn.example.test. hostmaster.cdn.example.test. 3 3600 600 604800 60");
  soa->set_ttl(3600);
  auto* ns = zone->add_apex_records();
  ns->set_qname("cdn.example.test.");
  ns->set_qtype("NS");
  ns->set_content("ns1.cdn.example.test.");
  ns->set_ttl(3600);
  for (const char* name : {"video", "db"}) {
    auto* svc = zone->add_services();
    svc->set_name(name);
    svc->add_fallback_addresses("192.0.2.10");
    svc->add_fallback_addresses("2001:db8::10");
    svc->set_fallback_ttl(5);
  }
  return z;
}

}  // namespace ppe::testing
