// Backend registry: names → factories for the backends compiled into this build.
#include <stdexcept>

#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/cpu_backend.h"
#if defined(LONGBOW_HAS_METAL) || defined(LONGBOW_HAS_METAL_SIM)
#include "longbow/backend/metal/metal_backend.h"
#endif

namespace longbow {

namespace {
#if defined(LONGBOW_HAS_METAL)
// Whether a Metal device can be opened on this machine (cached; a Mac without a GPU, or a VM,
// has the backend built in but not usable).
bool metal_usable() {
  static const bool usable = [] {
    try {
      metal::make_metal_backend("metal");
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return usable;
}
#endif
}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> names = {"cpu"};
#if defined(LONGBOW_HAS_METAL)
  if (metal_usable()) names.push_back("metal");
#endif
#if defined(LONGBOW_HAS_METAL_SIM)
  names.push_back("metal-sim");
#endif
  return names;
}

std::unique_ptr<Backend> create_backend(const std::string& name, const BackendOptions& options) {
  if (name == "cpu") return cpu::make_cpu_backend(options);
#if defined(LONGBOW_HAS_METAL)
  if (name == "metal" || (name == "auto" && metal_usable()))
    return metal::make_metal_backend("metal", options.mlp);
#endif
  if (name == "auto")
    return cpu::make_cpu_backend(options);  // the simulator is never picked automatically
#if defined(LONGBOW_HAS_METAL_SIM)
  if (name == "metal-sim") return metal::make_metal_backend("metal-sim", options.mlp);
#endif
  std::string known;
  for (const auto& n : available_backends()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("[backend] unknown or unavailable backend '" + name +
                              "' (available: " + known + ", auto)");
}

}  // namespace longbow
