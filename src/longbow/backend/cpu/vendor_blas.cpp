// Finding and loading the vendor BLAS (vendor_blas.h).
#include "longbow/backend/cpu/vendor_blas.h"

#include <cstdlib>
#include <mutex>

#if defined(__APPLE__)
extern "C" void cblas_sgemm(int order, int trans_a, int trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, const float* B, int ldb, float beta, float* C,
                            int ldc);
#else
#include <dlfcn.h>
#endif

namespace longbow::cpu {

namespace {

std::mutex& blas_mutex() {
  static std::mutex m;
  return m;
}
std::string& requested_path() {
  static std::string path;
  return path;
}

struct Loaded {
  bool done = false;
  VendorBlas blas;
  bool ok = false;
  std::string status;
};

Loaded& loaded() {
  static Loaded l;
  return l;
}

#if defined(__APPLE__)
void load(Loaded& l) {
  l.blas = {"Accelerate", cblas_sgemm, nullptr};
  l.ok = true;
  l.status = "Accelerate";
}
#else
template <typename Fn>
Fn symbol(void* lib, const char* prefixed, const char* plain) {
  void* s = dlsym(lib, prefixed);
  if (s == nullptr) s = dlsym(lib, plain);
  return reinterpret_cast<Fn>(s);
}

void load(Loaded& l) {
  const char* env = std::getenv("LONGBOW_BLAS_LIBRARY");
  const std::string path = env != nullptr && *env != '\0' ? env : requested_path();
  if (path.empty()) {
    l.status =
        "none: no BLAS library given (pip install scipy-openblas32, or set "
        "LONGBOW_BLAS_LIBRARY to a CBLAS shared library)";
    return;
  }
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = dlerror();
    l.status = "none: cannot load " + path + ": " + (e ? e : "dlopen failed");
    return;
  }
  using Sgemm = decltype(VendorBlas::sgemm);
  using SetThreads = decltype(VendorBlas::set_num_threads);
  const auto sgemm = symbol<Sgemm>(lib, "scipy_cblas_sgemm", "cblas_sgemm");
  if (sgemm == nullptr) {
    l.status = "none: " + path + " has no cblas_sgemm";
    return;  // the library stays loaded: harmless, and unloading a BLAS with threads is not
  }
  const auto threads =
      symbol<SetThreads>(lib, "scipy_openblas_set_num_threads", "openblas_set_num_threads");
  l.blas = {(threads ? "OpenBLAS (" : "CBLAS (") + path + ")", sgemm, threads};
  l.ok = true;
  l.status = l.blas.name;
}
#endif

}  // namespace

void set_blas_library(const std::string& path) {
  std::lock_guard<std::mutex> lock(blas_mutex());
  requested_path() = path;
}

const VendorBlas* vendor_blas() {
  std::lock_guard<std::mutex> lock(blas_mutex());
  Loaded& l = loaded();
  if (!l.done) {
    load(l);
    l.done = true;
  }
  return l.ok ? &l.blas : nullptr;
}

std::string vendor_blas_status() {
  vendor_blas();
  std::lock_guard<std::mutex> lock(blas_mutex());
  return loaded().status;
}

}  // namespace longbow::cpu
