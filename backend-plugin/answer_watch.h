#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backend-plugin/answer_table.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::plugin {

// Keeps an AnswerTable fed from Resolver.WatchAnswers on its own thread:
// applies each update, and on any error reconnects with backoff (100 ms
// doubling to 2 s), resuming from the table's version.
class AnswerWatch {
 public:
  struct Options {
    std::string target;  // as PpeClient's
    absl::Duration min_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(2);
  };
  using ZonesCallback = std::function<void(const ppe::v1::ListZonesResponse&)>;

  // `on_zones` gets the zone data of every snapshot (on the watch thread).
  AnswerWatch(Options options, AnswerTable& table, ZonesCallback on_zones = nullptr);
  ~AnswerWatch();  // Stop()

  void Start();
  void Stop();

 private:
  void Run();

  Options options_;
  AnswerTable& table_;
  ZonesCallback on_zones_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ppe::v1::Resolver::Stub> stub_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace ppe::plugin
