// MPSGraph MLP block (mpsgraph_mlp.h). Objective-C++ with ARC; Apple only.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#import <MetalPerformanceShaders/MetalPerformanceShaders.h>
#import <MetalPerformanceShadersGraph/MetalPerformanceShadersGraph.h>

#include "longbow/backend/metal/mpsgraph_mlp.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

#include "longbow/backend/mlp_chooser.h"  // MLP_BUCKETS, mlp_bucket

namespace longbow::metal {

namespace {

MPSDataType mps_type(DType t) {
  switch (t) {
    case DType::F32: return MPSDataTypeFloat32;
    case DType::F16: return MPSDataTypeFloat16;
    case DType::BF16:
      if (@available(macOS 14.0, *)) return MPSDataTypeBFloat16;
      break;
    default: break;
  }
  throw std::invalid_argument(std::string("[metal.mpsgraph] no MPSGraph type for ") +
                              dtype_name(t));
}

// One compiled block for `bucket` tokens: x (bucket, D) f32, weights as stored, optional acc
// (bucket, D) f32 added to the result, y (bucket, D) f32.
struct Block {
  MPSGraphExecutable* exe;
  MPSGraphTensor *x, *w_gate, *w_up, *w_down, *acc, *y;
};

Block build(id<MTLDevice> device, int bucket, int D, int F, DType dtype, bool accumulate) {
  MPSGraph* g = [[MPSGraph alloc] init];
  const MPSDataType wt = mps_type(dtype), f32 = MPSDataTypeFloat32;
  NSArray<NSNumber*>* xs = @[ @(bucket), @(D) ];
  Block b{};
  b.x = [g placeholderWithShape:xs dataType:f32 name:@"x"];
  b.w_gate = [g placeholderWithShape:@[ @(F), @(D) ] dataType:wt name:@"w_gate"];
  b.w_up = [g placeholderWithShape:@[ @(F), @(D) ] dataType:wt name:@"w_up"];
  b.w_down = [g placeholderWithShape:@[ @(D), @(F) ] dataType:wt name:@"w_down"];
  auto cast = [&](MPSGraphTensor* t, MPSDataType to) {
    return t.dataType == to ? t : [g castTensor:t toType:to name:nil];
  };
  // a (rows, K) · w (N, K)ᵀ in the weights' dtype.
  auto times_wt = [&](MPSGraphTensor* a, MPSGraphTensor* w) {
    MPSGraphTensor* w_t = [g transposeTensor:w dimension:0 withDimension:1 name:nil];
    return [g matrixMultiplicationWithPrimaryTensor:cast(a, wt) secondaryTensor:w_t name:nil];
  };
  MPSGraphTensor* gate = cast(times_wt(b.x, b.w_gate), f32);
  MPSGraphTensor* up = cast(times_wt(b.x, b.w_up), f32);
  MPSGraphTensor* silu = [g multiplicationWithPrimaryTensor:gate
                                            secondaryTensor:[g sigmoidWithTensor:gate name:nil]
                                                       name:nil];
  MPSGraphTensor* h = [g multiplicationWithPrimaryTensor:silu secondaryTensor:up name:nil];
  MPSGraphTensor* y = cast(times_wt(h, b.w_down), f32);
  if (accumulate) {
    b.acc = [g placeholderWithShape:xs dataType:f32 name:@"acc"];
    y = [g additionWithPrimaryTensor:b.acc secondaryTensor:y name:nil];
  }
  b.y = y;
  NSMutableDictionary<MPSGraphTensor*, MPSGraphShapedType*>* feeds =
      [NSMutableDictionary dictionary];
  for (MPSGraphTensor* t in @[ b.x, b.w_gate, b.w_up, b.w_down ]) {
    feeds[t] = [[MPSGraphShapedType alloc] initWithShape:t.shape dataType:t.dataType];
  }
  if (b.acc != nil) feeds[b.acc] = [[MPSGraphShapedType alloc] initWithShape:xs dataType:f32];
  b.exe = [g compileWithDevice:[MPSGraphDevice deviceWithMTLDevice:device]
                         feeds:feeds
                 targetTensors:@[ b.y ]
              targetOperations:nil
         compilationDescriptor:nil];
  if (b.exe == nil) throw std::runtime_error("[metal.mpsgraph] compiling the MLP graph failed");
  return b;
}

// A tensor's data in place: `bytes` of `buffer` from `offset`, shaped (rows, cols).
MPSGraphTensorData* view(id<MTLBuffer> buffer, size_t offset, int rows, int cols, MPSDataType t) {
  MPSNDArrayDescriptor* desc = [MPSNDArrayDescriptor descriptorWithDataType:t
                                                                      shape:@[ @(rows), @(cols) ]];
  MPSNDArray* array = [[MPSNDArray alloc] initWithBuffer:buffer offset:offset descriptor:desc];
  return [[MPSGraphTensorData alloc] initWithMPSNDArray:array];
}

}  // namespace

struct MpsGraphMlp::Impl {
  id<MTLDevice> device;
  std::map<std::tuple<int, DType, int, int, bool>, Block> blocks;  // (bucket, dtype, D, F, acc)
  id<MTLBuffer> x_pad = nil, acc_pad = nil, y_pad = nil;           // (512, D) f32 scratch each

  id<MTLBuffer> grow(id<MTLBuffer> b, size_t bytes) {
    if (b != nil && b.length >= bytes) return b;
    id<MTLBuffer> n = [device newBufferWithLength:bytes options:MTLResourceStorageModeShared];
    if (n == nil) throw std::runtime_error("[metal.mpsgraph] out of memory for MLP scratch");
    return n;
  }
};

MpsGraphMlp::MpsGraphMlp(void* device) : impl_(std::make_unique<Impl>()) {
  impl_->device = (__bridge id<MTLDevice>)device;
}

MpsGraphMlp::~MpsGraphMlp() = default;

std::string MpsGraphMlp::name() {
  NSOperatingSystemVersion v = [[NSProcessInfo processInfo] operatingSystemVersion];
  return "MPSGraph (macOS " + std::to_string(v.majorVersion) + "." +
         std::to_string(v.minorVersion) + ")";
}

std::string MpsGraphMlp::unsupported(DType dtype) {
  if (dtype == DType::F32 || dtype == DType::F16) return "";
  if (dtype == DType::BF16) {
    if (@available(macOS 14.0, *)) return "";
    return "MPSGraph path: BF16 needs macOS 14";
  }
  return std::string("MPSGraph path: takes F32, F16 or BF16 weights, found ") + dtype_name(dtype);
}

void* MpsGraphMlp::encode(void* cmd, const MpsGraphMlpCall& c) {
  Impl& s = *impl_;
  const int max_bucket = MLP_BUCKETS[std::size(MLP_BUCKETS) - 1];
  const size_t row_bytes = static_cast<size_t>(c.D) * sizeof(float);
  s.x_pad = s.grow(s.x_pad, max_bucket * row_bytes);
  s.y_pad = s.grow(s.y_pad, max_bucket * row_bytes);
  if (c.accumulate) s.acc_pad = s.grow(s.acc_pad, max_bucket * row_bytes);
  id<MTLBuffer> out = (__bridge id<MTLBuffer>)c.out, x = (__bridge id<MTLBuffer>)c.x;
  const MPSDataType wt = mps_type(c.dtype), f32 = MPSDataTypeFloat32;
  MPSGraphTensorData* wg = view((__bridge id<MTLBuffer>)c.w_gate, c.w_gate_offset, c.F, c.D, wt);
  MPSGraphTensorData* wu = view((__bridge id<MTLBuffer>)c.w_up, c.w_up_offset, c.F, c.D, wt);
  MPSGraphTensorData* wd = view((__bridge id<MTLBuffer>)c.w_down, c.w_down_offset, c.D, c.F, wt);
  MPSCommandBuffer* mcb =
      [MPSCommandBuffer commandBufferWithCommandBuffer:(__bridge id<MTLCommandBuffer>)cmd];
  for (int m0 = 0; m0 < c.M; m0 += max_bucket) {
    const int rows = std::min(max_bucket, c.M - m0), bucket = mlp_bucket(rows);
    const auto key = std::make_tuple(bucket, c.dtype, c.D, c.F, c.accumulate);
    auto it = s.blocks.find(key);
    if (it == s.blocks.end())
      it = s.blocks.emplace(key, build(s.device, bucket, c.D, c.F, c.dtype, c.accumulate)).first;
    const Block& b = it->second;
    const size_t bytes = rows * row_bytes, at = m0 * row_bytes;
    id<MTLBlitCommandEncoder> in = [mcb blitCommandEncoder];
    [in copyFromBuffer:x
             sourceOffset:c.x_offset + at
                 toBuffer:s.x_pad
        destinationOffset:0
                     size:bytes];
    if (c.accumulate) {
      [in copyFromBuffer:out
               sourceOffset:c.out_offset + at
                   toBuffer:s.acc_pad
          destinationOffset:0
                       size:bytes];
    }
    [in endEncoding];
    NSMutableDictionary<MPSGraphTensor*, MPSGraphTensorData*>* feeds =
        [NSMutableDictionary dictionary];
    feeds[b.x] = view(s.x_pad, 0, bucket, c.D, f32);
    feeds[b.w_gate] = wg, feeds[b.w_up] = wu, feeds[b.w_down] = wd;
    if (c.accumulate) feeds[b.acc] = view(s.acc_pad, 0, bucket, c.D, f32);
    NSMutableArray<MPSGraphTensorData*>* inputs = [NSMutableArray array];
    for (MPSGraphTensor* t in b.exe.feedTensors) [inputs addObject:feeds[t]];
    [b.exe encodeToCommandBuffer:mcb
                     inputsArray:inputs
                    resultsArray:@[ view(s.y_pad, 0, bucket, c.D, f32) ]
             executionDescriptor:nil];
    id<MTLBlitCommandEncoder> back = [mcb blitCommandEncoder];
    [back copyFromBuffer:s.y_pad
             sourceOffset:0
                 toBuffer:out
        destinationOffset:c.out_offset + at
                     size:bytes];
    [back endEncoding];
  }
  // MPSGraph may have committed `cmd` and continued in a new command buffer.
  id<MTLCommandBuffer> now = mcb.commandBuffer;
  if ((__bridge void*)now == cmd) return cmd;
  return (__bridge_retained void*)now;
}

}  // namespace longbow::metal
