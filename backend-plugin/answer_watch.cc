#include "backend-plugin/answer_watch.h"

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "ppe-service/common/log.h"

namespace ppe::plugin {

AnswerWatch::AnswerWatch(Options options, AnswerTable& table, ZonesCallback on_zones)
    : options_(std::move(options)), table_(table), on_zones_(std::move(on_zones)) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);  // snapshot chunks of long address lists
  // Its own channel (its own connection): the stream never queues behind Resolve calls.
  args.SetInt("grpc.ppe_answer_watch", 1);
  channel_ = grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(), args);
  stub_ = ppe::v1::Resolver::NewStub(channel_);
}

AnswerWatch::~AnswerWatch() { Stop(); }

void AnswerWatch::Start() {
  thread_ = std::thread([this] { Run(); });
}

void AnswerWatch::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void AnswerWatch::Run() {
  absl::Duration backoff = options_.min_backoff;
  while (true) {
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      call_ = &ctx;
    }
    ppe::v1::WatchAnswersRequest request;
    request.set_epoch(table_.epoch());
    request.set_version(table_.version());
    std::unique_ptr<grpc::ClientReader<ppe::v1::AnswerUpdate>> reader =
        stub_->WatchAnswers(&ctx, request);
    ppe::v1::AnswerUpdate update;
    bool connected = false;
    while (reader->Read(&update)) {
      if (!connected) {
        connected = true;
        backoff = options_.min_backoff;
        table_.SetConnected(true, absl::Now());
        spdlog::info("answer stream from {} up (epoch {:x}, version {}{})", options_.target,
                     update.epoch(), update.version(), update.reset() ? ", snapshot" : "");
      }
      if (absl::Status s = table_.Apply(update); !s.ok()) {
        spdlog::warn("answer stream: {}; resynchronising", s.message());
        table_.ForgetVersion();
        ctx.TryCancel();
        break;
      }
      if (update.reset() && on_zones_ && update.zones().zones_size() > 0) {
        on_zones_(update.zones());
      }
    }
    grpc::Status status = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      call_ = nullptr;
      if (stopping_) return;
    }
    table_.SetConnected(false, absl::Now());
    if (connected) {
      spdlog::warn("answer stream from {} lost: {}", options_.target, status.error_message());
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace ppe::plugin
