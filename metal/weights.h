// Weight formats read by the kernels (embed, matmul): GGUF block layouts (quant_blocks.h)
// and plain f32 / f16 / bf16 rows. Each format is a tag type with:
//   BLOCK                        elements per block (1 for plain types)
//   elem(row, k)                 element k of a row
//   dot_block(row, b, x)         sum_j w[b * BLOCK + j] * x[j] for one block
// Kernels are templates over the tag and are instantiated per dtype with [[host_name]].
#pragma once
#include <metal_stdlib>
using namespace metal;

#include "quant_blocks.h"

inline float bf16_bits_to_float(ushort b) { return as_type<float>(uint(b) << 16); }

struct w_f32 {
  enum { BLOCK = 1 };
  static float elem(device const uchar* row, uint k) { return ((device const float*)row)[k]; }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    return ((device const float*)row)[b] * x[0];
  }
};

struct w_f16 {
  enum { BLOCK = 1 };
  static float elem(device const uchar* row, uint k) { return float(((device const half*)row)[k]); }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    return float(((device const half*)row)[b]) * x[0];
  }
};

struct w_bf16 {
  enum { BLOCK = 1 };
  static float elem(device const uchar* row, uint k) {
    return bf16_bits_to_float(((device const ushort*)row)[k]);
  }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    return bf16_bits_to_float(((device const ushort*)row)[b]) * x[0];
  }
};

struct w_q8_0 {
  enum { BLOCK = LONGBOW_QK };
  static float elem(device const uchar* row, uint k) {
    device const BlockQ8_0* blk = (device const BlockQ8_0*)row + k / BLOCK;
    return float(blk->d) * float(int(blk->qs[k % BLOCK]));
  }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    device const BlockQ8_0* blk = (device const BlockQ8_0*)row + b;
    float acc = 0.0f;
    for (uint j = 0; j < BLOCK; ++j) acc += float(int(blk->qs[j])) * x[j];
    return float(blk->d) * acc;
  }
};

struct w_q4_0 {
  enum { BLOCK = LONGBOW_QK };
  static float elem(device const uchar* row, uint k) {
    device const BlockQ4_0* blk = (device const BlockQ4_0*)row + k / BLOCK;
    uint j = k % BLOCK;
    uint q = j < BLOCK / 2 ? (blk->qs[j] & 0x0F) : (blk->qs[j - BLOCK / 2] >> 4);
    return float(blk->d) * float(int(q) - 8);
  }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    device const BlockQ4_0* blk = (device const BlockQ4_0*)row + b;
    float acc = 0.0f;
    for (uint j = 0; j < BLOCK / 2; ++j) {
      acc += float(int(blk->qs[j] & 0x0F) - 8) * x[j];
      acc += float(int(blk->qs[j] >> 4) - 8) * x[j + BLOCK / 2];
    }
    return float(blk->d) * acc;
  }
};

struct w_q4_1 {
  enum { BLOCK = LONGBOW_QK };
  static float elem(device const uchar* row, uint k) {
    device const BlockQ4_1* blk = (device const BlockQ4_1*)row + k / BLOCK;
    uint j = k % BLOCK;
    uint q = j < BLOCK / 2 ? (blk->qs[j] & 0x0F) : (blk->qs[j - BLOCK / 2] >> 4);
    return float(blk->d) * float(q) + float(blk->m);
  }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    device const BlockQ4_1* blk = (device const BlockQ4_1*)row + b;
    float acc = 0.0f, xsum = 0.0f;
    for (uint j = 0; j < BLOCK / 2; ++j) {
      acc += float(blk->qs[j] & 0x0F) * x[j] + float(blk->qs[j] >> 4) * x[j + BLOCK / 2];
      xsum += x[j] + x[j + BLOCK / 2];
    }
    return float(blk->d) * acc + float(blk->m) * xsum;
  }
};
