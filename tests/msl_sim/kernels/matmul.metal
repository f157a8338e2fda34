// 8x8 simdgroup_matrix products, one SIMD group per threadgroup: C = A * B (+ C0), and
// C = A * B^T through a transposed load. Instantiated per element type with [[host_name]].
#include <metal_stdlib>
using namespace metal;

template <typename T>
kernel void matmul8x8(device const T* a [[buffer(0)]],    // (8, 8)
                      device const T* b [[buffer(1)]],    // (8, 8)
                      device const float* c0 [[buffer(2)]],  // (8, 8)
                      device float* c [[buffer(3)]],      // (8, 8) A*B + C0
                      device float* ct [[buffer(4)]]) {   // (8, 8) A*B^T
  simdgroup_matrix<T, 8, 8> ma;
  simdgroup_matrix<T, 8, 8> mb;
  simdgroup_matrix<T, 8, 8> mbt;
  simdgroup_float8x8 mc;
  simdgroup_float8x8 md;
  simdgroup_load(ma, a, 8);
  simdgroup_load(mb, b, 8);
  simdgroup_load(mbt, b, 8, ulong2(0, 0), true);
  simdgroup_load(mc, c0, 8);
  simdgroup_multiply_accumulate(md, ma, mb, mc);
  simdgroup_store(md, c, 8);
  simdgroup_multiply(md, ma, mbt);
  simdgroup_store(md, ct, 8);
}

template [[host_name("matmul8x8_f32")]] kernel void matmul8x8<float>(
    device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
    device const float* c0 [[buffer(2)]], device float* c [[buffer(3)]],
    device float* ct [[buffer(4)]]);
template [[host_name("matmul8x8_f16")]] kernel void matmul8x8<half>(
    device const half* a [[buffer(0)]], device const half* b [[buffer(1)]],
    device const float* c0 [[buffer(2)]], device float* c [[buffer(3)]],
    device float* ct [[buffer(4)]]);
