#pragma once

#include <libvirt/libvirt.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/vm/hypervisor.h"

namespace ppe::vm {

// The real hypervisor through libvirt: test:/// (no daemon, CI and quick start),
// lxc:/// (real containers), qemu:///system. One shared connection; libvirt's
// API is thread-safe per connection. Blocking: call from worker threads only.
//
// A daemon connection that dies (libvirtd restarted) is noticed through
// libvirt's close callback or virConnectIsAlive and reopened on the next call,
// up to kOpenAttempts times with backoff; a call that fails because the
// connection died under it is retried once on the new connection. The test
// driver's connection is never reopened: its state lives only as long as it.
class LibvirtHypervisor final : public Hypervisor {
 public:
  // XML namespace of PPE's <metadata> element.
  static constexpr const char* kMetadataNs = "https://ppe.example.test/xmlns/vm/1";
  // Reconnection: attempts per call and the first backoff (doubling): 3 tries
  // take at most ~0.7 s of sleep plus the connects themselves.
  static constexpr int kOpenAttempts = 3;
  static constexpr absl::Duration kOpenBackoff = absl::Milliseconds(100);
  // cgroup CPU shares per vCPU when the spec gives none (libvirt's default).
  static constexpr unsigned kSharesPerVcpu = 1024;
  static constexpr unsigned kCpuPeriodUs = 100000;

  static absl::StatusOr<std::unique_ptr<LibvirtHypervisor>> Open(const std::string& uri);
  // The same, connecting on first use: a host that is down when PPE starts is
  // reached once it is back (every call until then fails UNAVAILABLE). The
  // driver is taken from the URI's scheme ("lxc", "qemu+ssh" -> "qemu").
  static std::unique_ptr<LibvirtHypervisor> OpenLater(const std::string& uri);
  ~LibvirtHypervisor() override;

  HypervisorCapabilities capabilities() const override { return caps_; }
  absl::Status Create(const DomainSpec& spec) override;
  absl::Status Destroy(absl::string_view name) override;
  absl::StatusOr<std::vector<DomainInfo>> List() override;
  absl::Status Resize(absl::string_view name, unsigned vcpus, unsigned memory_mib) override;
  // virConnectGetAllDomainStats (CPU total, balloon, vCPUs, interfaces) where
  // the driver has it (test:///, qemu:///: the test driver reports only the
  // state, so every counter is absent); lxc:/// (libvirt 9.0) does not, and
  // gets virDomainGetInfo plus virDomainInterfaceStats per NIC instead.
  absl::StatusOr<std::vector<DomainStats>> Stats() override;

  // Domain XML for `spec` on this connection's driver (exposed for tests).
  std::string DomainXml(const DomainSpec& spec) const;
  // "test", "lxc", "qemu".
  const std::string& driver() const { return driver_; }
  // How many times the connection was reopened (for tests and metrics).
  int reconnects() const { return reconnects_.load(); }

 private:
  LibvirtHypervisor(std::string uri, virConnectPtr conn, std::string driver);

  // A referenced connection: valid for the call even if another thread
  // reopens meanwhile.
  class ConnRef;
  absl::StatusOr<ConnRef> Acquire();
  // Runs `op` on the live connection; if it fails with UNAVAILABLE and the
  // connection turns out dead, reopens and runs it once more.
  absl::Status WithConnection(absl::string_view what,
                              const std::function<absl::Status(virConnectPtr, bool retry)>& op);
  absl::Status ReopenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool DeadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void OnClose(virConnectPtr conn, int reason, void* opaque);

  absl::Status CreateOn(virConnectPtr conn, const DomainSpec& spec, bool retry);
  absl::Status DestroyOn(virConnectPtr conn, absl::string_view name);
  absl::Status ResizeOn(virConnectPtr conn, absl::string_view name, unsigned vcpus,
                        unsigned memory_mib);
  absl::Status BulkStatsOn(virConnectPtr conn, std::vector<DomainStats>& out);
  absl::Status PerDomainStatsOn(virConnectPtr conn, std::vector<DomainStats>& out);
  absl::Status UpdateDhcpHost(virConnectPtr conn, absl::string_view name, const VmTag& tag,
                              bool add);

  const std::string uri_;
  const std::string driver_;
  HypervisorCapabilities caps_;
  absl::Mutex mu_;
  virConnectPtr conn_ ABSL_GUARDED_BY(mu_);
  // Set by the close callback (event-loop thread) for the connection it names.
  std::atomic<virConnectPtr> watched_{nullptr};
  std::atomic<bool> closed_{false};
  std::atomic<int> reconnects_{0};
  std::atomic<bool> bulk_stats_unsupported_{false};  // the driver refused GetAllDomainStats
};

// Parses PPE's metadata element, as virDomainGetMetadata returns it for PPE's
// namespace, back into a tag; nullopt if it lacks the required attributes.
std::optional<VmTag> ParseVmTag(absl::string_view metadata_xml);

}  // namespace ppe::vm
