// Backend registry: names → factories for the backends compiled into this build.
#include <stdexcept>

#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/cpu_backend.h"

namespace longbow {

std::vector<std::string> available_backends() {
  std::vector<std::string> names = {"cpu"};
  return names;
}

std::unique_ptr<Backend> create_backend(const std::string& name, const BackendOptions& options) {
  if (name == "cpu" || name == "auto") return cpu::make_cpu_backend(options);
  std::string known;
  for (const auto& n : available_backends()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("[backend] unknown or unavailable backend '" + name + "' (available: " + known +
                              ", auto)");
}

}  // namespace longbow
