// The MLP chooser (mlp_chooser.h).
#include "longbow/backend/mlp_chooser.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <utility>

namespace longbow {

int mlp_bucket(int M) {
  for (int b : MLP_BUCKETS) {
    if (M <= b) return b;
  }
  return MLP_BUCKETS[std::size(MLP_BUCKETS) - 1];
}

MlpChooser::MlpChooser(MlpPath path, std::string backend, std::string vendor_name)
    : path_(path), backend_(std::move(backend)), vendor_name_(std::move(vendor_name)) {}

bool MlpChooser::use_vendor(const MlpArgs& a, const std::string& unsupported,
                            const std::function<double(bool vendor)>& measure) {
  if (path_ == MlpPath::Custom || a.M <= 0) return false;
  if (path_ == MlpPath::Vendor) {
    check(unsupported);
    return true;
  }
  if (!unsupported.empty()) return false;
  const int bucket = mlp_bucket(a.M);
  for (const MlpMeasurement& e : table_) {
    if (e.dtype == a.gate_dtype && e.D == a.D && e.F == a.F && e.bucket == bucket)
      return e.vendor();
  }
  double custom_us = 1e300, vendor_us = 1e300;
  for (int rep = 0; rep <= MLP_MEASURE_REPS; ++rep) {
    const double cu = measure(false), vu = measure(true);
    if (rep > 0) custom_us = std::min(custom_us, cu), vendor_us = std::min(vendor_us, vu);
  }
  table_.push_back({a.gate_dtype, a.D, a.F, bucket, a.M, custom_us, vendor_us});
  return table_.back().vendor();
}

void MlpChooser::check(const std::string& unsupported) const {
  if (path_ == MlpPath::Vendor && !unsupported.empty())
    throw std::invalid_argument("[" + backend_ + ".mlp] " + unsupported);
}

std::vector<std::string> MlpChooser::report() const {
  std::vector<std::string> lines = {std::string("path: ") + mlp_path_name(path_) +
                                    "; vendor: " + vendor_name_};
  for (const MlpMeasurement& e : table_) {
    lines.push_back(std::string(dtype_name(e.dtype)) + " D=" + std::to_string(e.D) +
                    " F=" + std::to_string(e.F) + " M<=" + std::to_string(e.bucket) +
                    " (measured at M=" + std::to_string(e.M) + "): custom " +
                    std::to_string(static_cast<int64_t>(e.custom_us)) + " us, vendor " +
                    std::to_string(static_cast<int64_t>(e.vendor_us)) + " us -> " +
                    (e.vendor() ? "vendor" : "custom"));
  }
  return lines;
}

}  // namespace longbow
