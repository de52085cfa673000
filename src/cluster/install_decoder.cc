#include "cluster/install_decoder.hpp"

#include <utility>

namespace catga::internal {

InstallDecoder::~InstallDecoder() {
  if (disposer_.joinable()) disposer_.join();
}

void InstallDecoder::put(const void* data, std::size_t len, Outcome outcome) {
  std::lock_guard lock(mu_);
  prepared_.emplace(Prepared{data, len, std::move(outcome)});
}

std::optional<InstallDecoder::Outcome> InstallDecoder::take(const void* data, std::size_t len) {
  std::optional<Prepared> prepared;
  {
    std::lock_guard lock(mu_);
    prepared.swap(prepared_);
  }
  if (!prepared || prepared->data != data || prepared->len != len) {
    if (prepared && prepared->outcome && *prepared->outcome) dispose(std::move(*prepared->outcome));
    return std::nullopt;
  }
  return std::move(prepared->outcome);
}

void InstallDecoder::dispose(std::unique_ptr<PreparedRestore> replaced) {
  if (replaced == nullptr) return;
  if (disposer_.joinable()) disposer_.join();
  disposer_ = std::thread([replaced = std::move(replaced)]() mutable { replaced.reset(); });
}

}  // namespace catga::internal
