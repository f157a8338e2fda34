// The per-shape choice between a backend's own MLP block (Backend::mlp's ops) and a vendor
// library's (the CPU's BLAS, Metal's MPSGraph), from measurements made on this machine; one rule
// for every backend.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "longbow/backend/backend.h"

namespace longbow {

// Token-count buckets: M maps to the smallest bucket >= M (M > 512: 512).
constexpr int MLP_BUCKETS[] = {1, 8, 64, 512};
int mlp_bucket(int M);

// The vendor must take < 90 % of our time: ours is batch-invariant and reproducible bit for bit,
// and a near tie would flip between runs.
constexpr double MLP_VENDOR_MARGIN = 0.9;
constexpr int MLP_MEASURE_REPS = 6;  // timed runs of each path after one warm-up

// One measured shape (weight dtype, D, F, bucket).
struct MlpMeasurement {
  DType dtype;
  int D, F, bucket, M;          // M: the token count it was measured at
  double custom_us, vendor_us;  // the best of MLP_MEASURE_REPS runs each
  bool vendor() const { return vendor_us < MLP_VENDOR_MARGIN * custom_us; }
};

class MlpChooser {
 public:
  // backend: for messages ("cpu", "metal"); vendor_name: the library, or why there is none.
  MlpChooser(MlpPath path, std::string backend, std::string vendor_name);
  MlpPath path() const { return path_; }

  // Whether this call runs the vendor path. `unsupported` says why the vendor cannot run `a` (""
  // when it can): auto then runs ours, vendor throws std::invalid_argument with the reason.
  // Under auto, the first call of a shape calls measure(false) and measure(true) alternately
  // (one warm-up, then MLP_MEASURE_REPS each; each runs one path on a scratch output to
  // completion and returns microseconds) and keeps the pick for later calls.
  bool use_vendor(const MlpArgs& a, const std::string& unsupported,
                  const std::function<double(bool vendor)>& measure);

  // Throws std::invalid_argument when the path is vendor and `unsupported` (why the vendor cannot
  // run a block) is not "".
  void check(const std::string& unsupported) const;

  // "path: ...; vendor: ...", then one line per measured shape.
  std::vector<std::string> report() const;

 private:
  MlpPath path_;
  std::string backend_, vendor_name_;
  std::vector<MlpMeasurement> table_;
};

}  // namespace longbow
