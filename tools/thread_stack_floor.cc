// A floor under the thread stack sizes that libraries ask for, for the
// `tessera` executable.
//
// Why: glibc carves every library's static TLS out of each thread's stack
// (glibc bug 11787), and this process links libraries with large static TLS
// (OpenBLAS about 60 KB, NCCL 12 KB, cudart 4 KB). civetweb, which serves the
// Prometheus /metrics endpoint through prometheus-cpp, starts its threads with
// fixed 100 KB stacks: what is left after the TLS overflowed on the second
// scrape (SIGSEGV). No civetweb option sets its stack size, so the executable
// defines pthread_attr_setstacksize (exported, so the dynamic linker binds
// civetweb's call here first) and passes every request on with at least
// kStackFloor bytes. Requests above the floor are untouched.
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>

namespace {

constexpr size_t kStackFloor = size_t{1} << 20;  // 1 MiB: TLS plus room to work

using SetStackSize = int (*)(pthread_attr_t*, size_t);

SetStackSize RealSetStackSize() {
  static const SetStackSize real = reinterpret_cast<SetStackSize>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return real;
}

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stacksize) {
  const SetStackSize real = RealSetStackSize();
  if (real == nullptr) return ENOSYS;
  return real(attr, std::max(stacksize, kStackFloor));
}
