// Weight formats read by the kernels (embed, matmul): GGUF block layouts (32 elements per block)
// and plain f32 / f16 / bf16 rows. Each format is a tag type with:
//   BLOCK                        elements per block (1 for plain types)
//   elem(row, k)                 element k of a row
//   dot_block(row, b, x)         sum_j w[b * BLOCK + j] * x[j] for one block
// Kernels are templates over the tag and are instantiated per dtype with [[host_name]].
#pragma once
#include <metal_stdlib>
using namespace metal;

struct block_q8_0 {
  half d;
  uchar qs[32];  // int8 stored as bytes (char signedness differs between compilers)
};
struct block_q4_0 {
  half d;
  uchar qs[16];  // lo nibbles: elements 0..15, hi: 16..31
};
struct block_q4_1 {
  half d;
  half m;
  uchar qs[16];
};

inline float bf16_bits_to_float(ushort b) { return as_type<float>(uint(b) << 16); }
inline int s8(uchar u) { return int(u ^ uchar(0x80)) - 128; }

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
  enum { BLOCK = 32 };
  static float elem(device const uchar* row, uint k) {
    device const block_q8_0* blk = (device const block_q8_0*)row + k / 32;
    return float(blk->d) * float(s8(blk->qs[k % 32]));
  }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    device const block_q8_0* blk = (device const block_q8_0*)row + b;
    float acc = 0.0f;
    for (uint j = 0; j < 32; ++j) acc += float(s8(blk->qs[j])) * x[j];
    return float(blk->d) * acc;
  }
};

struct w_q4_0 {
  enum { BLOCK = 32 };
  static float elem(device const uchar* row, uint k) {
    device const block_q4_0* blk = (device const block_q4_0*)row + k / 32;
    uint j = k % 32;
    uint q = j < 16 ? (blk->qs[j] & 0x0F) : (blk->qs[j - 16] >> 4);
    return float(blk->d) * float(int(q) - 8);
  }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    device const block_q4_0* blk = (device const block_q4_0*)row + b;
    float acc = 0.0f;
    for (uint j = 0; j < 16; ++j) {
      acc += float(int(blk->qs[j] & 0x0F) - 8) * x[j];
      acc += float(int(blk->qs[j] >> 4) - 8) * x[j + 16];
    }
    return float(blk->d) * acc;
  }
};

struct w_q4_1 {
  enum { BLOCK = 32 };
  static float elem(device const uchar* row, uint k) {
    device const block_q4_1* blk = (device const block_q4_1*)row + k / 32;
    uint j = k % 32;
    uint q = j < 16 ? (blk->qs[j] & 0x0F) : (blk->qs[j - 16] >> 4);
    return float(blk->d) * float(q) + float(blk->m);
  }
  static float dot_block(device const uchar* row, uint b, device const float* x) {
    device const block_q4_1* blk = (device const block_q4_1*)row + b;
    float acc = 0.0f, xsum = 0.0f;
    for (uint j = 0; j < 16; ++j) {
      acc += float(blk->qs[j] & 0x0F) * x[j] + float(blk->qs[j] >> 4) * x[j + 16];
      xsum += x[j] + x[j + 16];
    }
    return float(blk->d) * acc + float(blk->m) * xsum;
  }
};
