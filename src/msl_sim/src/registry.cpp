// Kernel registry: generated registration functions add KernelInfo entries by host name.
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include "msl_sim/sim.h"

namespace msl_sim {

namespace {
struct Registry {
  std::mutex mu;
  std::map<std::string, const KernelInfo*, std::less<>> kernels;
  std::map<std::string, std::string, std::less<>> duplicates;  // name -> second source file
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

void register_kernel(const KernelInfo* info) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto [it, inserted] = r.kernels.emplace(info->name, info);
  if (!inserted && it->second != info) r.duplicates.emplace(info->name, info->file);
}

const KernelInfo& find_kernel(std::string_view name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (auto d = r.duplicates.find(name); d != r.duplicates.end())
    throw std::invalid_argument("[msl_sim] kernel '" + std::string(name) +
                                "' is defined twice (second definition in " + d->second + ")");
  auto it = r.kernels.find(name);
  if (it == r.kernels.end()) {
    std::string known;
    for (const auto& [k, v] : r.kernels) known += (known.empty() ? "" : ", ") + k;
    throw std::invalid_argument("[msl_sim] unknown kernel '" + std::string(name) +
                                "'; registered kernels: " + (known.empty() ? "(none)" : known));
  }
  return *it->second;
}

std::vector<std::string> list_kernels() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [k, v] : r.kernels) names.push_back(k);
  return names;
}

}  // namespace msl_sim
