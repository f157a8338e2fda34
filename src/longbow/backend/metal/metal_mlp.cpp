// The MLP block on Metal: our kernels (Backend::mlp's matmuls and glu) or MPSGraph
// (GpuCommandBuffer::encode_vendor_mlp, mpsgraph_mlp.mm) for float weights, SiLU and no biases,
// chosen by the MlpChooser from GPU times measured on this machine.
#include <chrono>
#include <stdexcept>
#include <string>

#include "longbow/backend/metal/metal_backend.h"

namespace longbow::metal {

namespace {

// Why the vendor library cannot run this block ("" when it can).
std::string vendor_unsupported(const MlpArgs& a, const GpuDevice& device) {
  if (a.gate_dtype != a.up_dtype || a.gate_dtype != a.down_dtype) {
    return std::string("MPSGraph path: expected one dtype for w_gate, w_up and w_down, found ") +
           dtype_name(a.gate_dtype) + ", " + dtype_name(a.up_dtype) + ", " +
           dtype_name(a.down_dtype);
  }
  if (a.gate_dtype != DType::F32 && a.gate_dtype != DType::F16 && a.gate_dtype != DType::BF16) {
    return std::string("MPSGraph path: takes F32, F16 or BF16 weights, found ") +
           dtype_name(a.gate_dtype) + " (quantized weights always run our kernels)";
  }
  if (!a.b_gate.empty() || !a.b_up.empty() || !a.b_down.empty())
    return "MPSGraph path: MLP biases are not implemented";
  if (a.act != Activation::Silu) {
    return std::string("MPSGraph path: only SiLU is implemented, found ") + activation_name(a.act);
  }
  return device.vendor_mlp_unsupported(a.gate_dtype);
}

}  // namespace

void MetalBackend::check_mlp(const MlpArgs& a) const {
  mlp_chooser_.check(vendor_unsupported(a, *device_));
}

void MetalBackend::mlp(const MlpArgs& a) {
  if (mlp_chooser_.path() == MlpPath::Custom) return Backend::mlp(a);  // the default: no checks
  const std::string why = vendor_unsupported(a, *device_);
  std::unique_ptr<Buffer> probe_out;  // the probes' output (auto, first call of a shape)
  auto encode_vendor = [&](const MlpArgs& m) {
    const size_t wb = dtype_row_bytes(m.gate_dtype, m.D) * m.F;  // bytes of w_gate and w_up
    const size_t md = static_cast<size_t>(m.M) * m.D * sizeof(float);
    const Bound out = bind_view(m.out, md, "mlp", "out"), x = bind_view(m.x, md, "mlp", "x"),
                wg = bind_view(m.w_gate, wb, "mlp", "w_gate"),
                wu = bind_view(m.w_up, wb, "mlp", "w_up"),
                wd = bind_view(m.w_down, dtype_row_bytes(m.down_dtype, m.F) * m.D, "mlp", "w_down");
    if (!cmd_) cmd_ = device_->new_command_buffer();
    cmd_->encode_vendor_mlp({out.buffer, x.buffer, wg.buffer, wu.buffer, wd.buffer, out.offset,
                             x.offset, wg.offset, wu.offset, wd.offset, m.M, m.D, m.F, m.gate_dtype,
                             m.accumulate});
  };
  const bool vendor = mlp_chooser_.use_vendor(a, why, [&](bool run_vendor) {
    synchronize();  // the step so far, outside the timing
    if (!probe_out) probe_out = alloc(static_cast<size_t>(a.M) * a.D * sizeof(float));
    MlpArgs probe = a;
    probe.out = {probe_out.get(), 0};
    probe.accumulate = false;
    const auto t0 = std::chrono::steady_clock::now();
    run_vendor ? encode_vendor(probe) : Backend::mlp(probe);
    synchronize();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  });
  vendor ? encode_vendor(a) : Backend::mlp(a);
}

}  // namespace longbow::metal
