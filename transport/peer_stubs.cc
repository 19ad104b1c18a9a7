// Lazily made channels, one per peer address.
#include "transport/peer_stubs.h"

#include "rpc/grpc_util.h"

namespace tessera {

tessera::v1::Worker::Stub& PeerStubs::For(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<tessera::v1::Worker::Stub>& stub = stubs_[address];
  if (stub == nullptr) stub = tessera::v1::Worker::NewStub(MakeChannel(address));
  return *stub;
}

}  // namespace tessera
