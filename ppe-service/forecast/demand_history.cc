#include "ppe-service/forecast/demand_history.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace ppe::forecast {

namespace {
int64_t FloorMod(int64_t a, int64_t b) { return ((a % b) + b) % b; }
}  // namespace

DemandHistory::DemandHistory(const DemandHistoryOptions& options)
    : options_(options),
      ring_(std::max(options.capacity, 1), 0.0f),
      rollup_(std::max(options.rollup_capacity, 1), 0.0f) {
  options_.rollup_factor = std::max(options_.rollup_factor, 1);
}

void DemandHistory::Advance() {
  // Close the coarse bucket that the newest fine bucket completes.
  if (size_ > 0 && FloorMod(last_ + 1, options_.rollup_factor) == 0) {
    const int cap = static_cast<int>(rollup_.size());
    const int64_t coarse = (last_ + 1) / options_.rollup_factor - 1;
    rollup_[FloorMod(coarse, cap)] = static_cast<float>(partial_);
    rollup_size_ = std::min(rollup_size_ + 1, cap);
    partial_ = 0;
  }
  ++last_;
  ring_[FloorMod(last_, static_cast<int64_t>(ring_.size()))] = 0.0f;
  size_ = std::min(size_ + 1, static_cast<int>(ring_.size()));
}

absl::Status DemandHistory::Add(int64_t bucket, double count) {
  if (!std::isfinite(count) || count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad count ", count));
  }
  if (size_ == 0) {
    last_ = bucket - 1;
    partial_ = 0;
  }
  const int64_t cap = static_cast<int64_t>(ring_.size());
  if (bucket <= last_ - size_) {
    return absl::OutOfRangeError(absl::StrCat("bucket ", bucket, " is older than the history"));
  }
  const int64_t full = cap + static_cast<int64_t>(options_.rollup_factor) * rollup_.size();
  if (bucket - last_ > full) {
    // A gap longer than everything held: the whole history is zeros now.
    std::fill(ring_.begin(), ring_.end(), 0.0f);
    std::fill(rollup_.begin(), rollup_.end(), 0.0f);
    size_ = static_cast<int>(cap);
    rollup_size_ = static_cast<int>(rollup_.size());
    last_ = bucket - 1;
    partial_ = 0;
  }
  while (last_ < bucket) Advance();
  ring_[FloorMod(bucket, cap)] += static_cast<float>(count);
  if (bucket / options_.rollup_factor == last_ / options_.rollup_factor) partial_ += count;
  return absl::OkStatus();
}

std::vector<double> DemandHistory::Values() const { return Tail(size_); }

std::vector<double> DemandHistory::Tail(int k) const {
  k = std::clamp(k, 0, size_);
  std::vector<double> out;
  out.reserve(k);
  const int64_t cap = static_cast<int64_t>(ring_.size());
  for (int64_t b = last_ - k + 1; b <= last_; ++b) out.push_back(ring_[FloorMod(b, cap)]);
  return out;
}

std::vector<double> DemandHistory::Rollup() const {
  std::vector<double> out;
  out.reserve(rollup_size_);
  const int64_t cap = static_cast<int64_t>(rollup_.size());
  const int64_t newest = (last_ + 1) / options_.rollup_factor - 1;  // Last complete coarse bucket.
  for (int64_t c = newest - rollup_size_ + 1; c <= newest; ++c) {
    out.push_back(rollup_[FloorMod(c, cap)]);
  }
  return out;
}

size_t DemandHistory::MemoryBytes() const {
  return sizeof(*this) + ring_.capacity() * sizeof(float) + rollup_.capacity() * sizeof(float);
}

}  // namespace ppe::forecast
