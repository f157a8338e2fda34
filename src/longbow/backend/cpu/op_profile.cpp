#include "longbow/backend/cpu/op_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace longbow::cpu {

OpProfile::OpProfile() {
  const char* env = std::getenv("LONGBOW_PROFILE_OPS");
  enabled_ = env != nullptr && *env != '\0' && std::strcmp(env, "0") != 0;
}

OpProfile::~OpProfile() { report(); }

void OpProfile::add(const std::string& key, int64_t ns) {
  Entry& e = entries_[key];
  e.calls += 1;
  e.ns += ns;
}

void OpProfile::report() const {
  if (!enabled_ || entries_.empty()) return;
  std::vector<std::pair<std::string, Entry>> rows(entries_.begin(), entries_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  int64_t total = 0;
  for (const auto& r : rows) total += r.second.ns;
  std::fprintf(stderr, "[longbow] cpu op profile (LONGBOW_PROFILE_OPS): %.1f ms in ops\n",
               total * 1e-6);
  std::fprintf(stderr, "%-40s %10s %12s %10s %7s\n", "op", "calls", "total ms", "mean us", "share");
  for (const auto& [key, e] : rows) {
    std::fprintf(stderr, "%-40s %10lld %12.2f %10.2f %6.1f%%\n", key.c_str(),
                 static_cast<long long>(e.calls), e.ns * 1e-6,
                 e.ns * 1e-3 / static_cast<double>(e.calls),
                 100.0 * e.ns / static_cast<double>(total));
  }
}

}  // namespace longbow::cpu
