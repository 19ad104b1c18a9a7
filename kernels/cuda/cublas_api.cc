// dlopen once (RTLD_LOCAL: cuBLAS's symbols stay out of the global scope);
// the library is never closed, so the pointers stay valid for the process.
#include "kernels/cuda/cublas_api.h"

#include <dlfcn.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace tessera::cuda_host {
namespace {

template <typename Fn>
bool Resolve(void* library, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (fn == nullptr) missing = name;
  return fn != nullptr;
}

absl::StatusOr<CublasApi> Load() {
  const std::string name = absl::StrCat("libcublas.so.", CUBLAS_VER_MAJOR);
  void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* error = dlerror();
    return absl::FailedPreconditionError(absl::StrCat("cannot load ", name, " (cuBLAS, needed by the CUDA backend): ",
                                                      error != nullptr ? error : "unknown error"));
  }
  CublasApi api;
  std::string missing;
  const bool ok = Resolve(library, "cublasCreate_v2", api.Create, missing) &&
                  Resolve(library, "cublasDestroy_v2", api.Destroy, missing) &&
                  Resolve(library, "cublasSetStream_v2", api.SetStream, missing) &&
                  Resolve(library, "cublasSetWorkspace_v2", api.SetWorkspace, missing) &&
                  Resolve(library, "cublasSetMathMode", api.SetMathMode, missing) &&
                  Resolve(library, "cublasSgemm_v2", api.Sgemm, missing) &&
                  Resolve(library, "cublasGemmEx", api.GemmEx, missing) &&
                  Resolve(library, "cublasGetStatusName", api.GetStatusName, missing) &&
                  Resolve(library, "cublasGetStatusString", api.GetStatusString, missing);
  if (!ok) return absl::FailedPreconditionError(absl::StrCat(name, " has no symbol ", missing));
  return api;
}

}  // namespace

absl::StatusOr<const CublasApi*> Cublas() {
  static const absl::StatusOr<CublasApi>* const api = new absl::StatusOr<CublasApi>(Load());
  if (!api->ok()) return api->status();
  return &**api;
}

}  // namespace tessera::cuda_host
