// One Worker stub per peer address, shared by every request on this worker,
// so channels (and their TCP connections) are made once and reused.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {

class PeerStubs {
 public:
  tessera::v1::Worker::Stub& For(const std::string& address);

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<tessera::v1::Worker::Stub>> stubs_;
};

}  // namespace tessera
