#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ppe::vm {

// Readiness of a real machine: its service port accepts a TCP connection.

// One non-blocking connect to ip:port, waited for with poll() up to `timeout`.
// OK when the connection is established (it is closed at once);
// UNAVAILABLE when refused or unreachable, DEADLINE_EXCEEDED on timeout,
// INVALID_ARGUMENT for a malformed address or port.
absl::Status ProbeTcp(const std::string& ip, int port, absl::Duration timeout);

// Probes every `interval` (each probe waits at most 250 ms, so a SYN lost
// while the guest's NIC comes up costs no 1 s retransmit) until one succeeds (OK) or `deadline`
// passes (DEADLINE_EXCEEDED, with the last probe's error). Blocking: worker threads only.
absl::Status WaitReady(const std::string& ip, int port, absl::Time deadline,
                       absl::Duration interval = absl::Milliseconds(20));

}  // namespace ppe::vm
