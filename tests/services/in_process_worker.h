// A real worker (bamba-tiny or another fixture, CPU) serving tessera.v1.Worker
// on 127.0.0.1 inside the test process, behind a handle that names no worker
// type: tests that also hold a Coordinator (whose FinishReason and the
// worker's share a name) include only this.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace tessera::testing {

class InProcessWorker {
 public:
  // Loads DIR's weights (once per directory) and serves with the limits a
  // `tessera worker` process sets.
  static std::unique_ptr<InProcessWorker> Start(const std::string& model_dir);
  virtual ~InProcessWorker() = default;

  virtual const std::string& address() const = 0;
  // memory_used_bytes as GetStatus reports it.
  virtual int64_t MemoryUsed() const = 0;
};

}  // namespace tessera::testing
