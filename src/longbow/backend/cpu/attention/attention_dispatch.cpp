// CPU attention variant choice and scheduling. Split forces the baseline (attention_split.cpp);
// FusedDecode / FlashPrefill force one algorithm for every token; Auto picks per sequence
// (attention_policy.h): generated tokens or few prompt tokens -> fused decode (flash-decoding key
// splits by context length alone, see attn_decode_splits; the SIMD decode item of
// attention_decode_simd.h), many -> flash prefill. All items of one call go to one dynamic work
// queue (an atomic counter), so decode tokens and prefill tiles of a mixed batch share the threads;
// the costliest prefill tiles are queued first. Scratch is per thread and grow-only; nothing is
// allocated per item.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "longbow/backend/attention_policy.h"
#include "longbow/backend/cpu/attention/attention_common.h"

namespace longbow::cpu {

namespace {
constexpr int ITEM_INTS = sizeof(AttnItem) / sizeof(int32_t);
// (token, first kv head, num kv heads, first partial, num_splits, items feeding it, finished items)
constexpr int MERGE_INTS = 7;

int decode_stage() { return attention_decode_stage("cpu.attention"); }
// Whether sequence s of b runs the decode path (attention_policy.h); false for no queries.
bool is_decode(const AttnBatch& b, AttentionVariant v, int s) {
  const int n = b.query_start[s + 1] - b.query_start[s];
  return n > 0 && attention_is_decode(v, n, b.is_generated(s));
}

// A decode token's flash-decoding key splits: the count from its context alone, then whole-block
// chunks (the last split may be shorter).
struct DecodeSplits {
  int splits, chunk;
};
DecodeSplits decode_split_plan(int keys, int block_size) {
  const int want = attn_decode_splits(keys);
  const int chunk =
      ((keys + want - 1) / want + block_size - 1) / block_size * block_size;  // whole blocks
  return {(keys + chunk - 1) / chunk, chunk};
}

struct Plan {
  int num_items = 0, num_merges = 0, num_partials = 0;
  int max_rows = 1, stage1_keys = 0;
};

// Fills c.scratch.attn_items with the work items followed by the split merges (MERGE_INTS each).
Plan plan_items(Ctx& c, const AttnBatch& b, AttentionVariant variant, int threads) {
  const int stage = decode_stage();
  const int Hkv = b.num_kv_heads, bs = b.block_size;
  std::vector<int32_t>& v = c.scratch.attn_items;
  v.clear();  // keeps capacity: grow-only
  Plan plan;
  auto push = [&](const AttnItem& it) {
    const auto* p = reinterpret_cast<const int32_t*>(&it);
    v.insert(v.end(), p, p + ITEM_INTS);
    ++plan.num_items;
  };
  // Prefill tiles first, latest (costliest) query tiles first. With a sliding window a tile starts
  // at the key tile holding its rows' first window key (tile-aligned, so a row's key tiles do not
  // depend on how its sequence was cut into query tiles or chunks).
  const int tile_keys = attn_tile_keys(bs);
  for (int s = 0; s < b.num_seqs; ++s) {
    const int q0 = b.query_start[s], q1 = b.query_start[s + 1];
    if (q1 == q0 || is_decode(b, variant, s)) continue;
    const int num_tiles = (q1 - q0 + ATTN_PREFILL_TOKENS - 1) / ATTN_PREFILL_TOKENS;
    for (int tile = num_tiles - 1; tile >= 0; --tile) {
      const int t0 = q0 + tile * ATTN_PREFILL_TOKENS, t1 = std::min(q1, t0 + ATTN_PREFILL_TOKENS);
      plan.max_rows = std::max(plan.max_rows, (t1 - t0) * b.group);
      int k0 = 0;
      if (b.window > 0) {
        k0 = b.seq_lens[s];
        for (int t = t0; t < t1; ++t) k0 = std::min(k0, b.window_begin(b.positions[t]));
        k0 = k0 / tile_keys * tile_keys;
      }
      for (int kvh = 0; kvh < Hkv; ++kvh)
        push({s, t0, t1, kvh, 1, k0, b.seq_lens[s], -1, 0, 0, -1});
    }
  }
  // Decode tokens: one item per (token, key split) over all kv heads, so a paged slot's heads
  // (contiguous) stream once through one core; the split count is a function of the token's
  // context only (batch independence): keys [window_begin(p), p], all of them with no window.
  // When that leaves fewer than two items per thread (a lone sequence), each kv head gets its own
  // items instead so every thread works. Both plans run each head with the same tiles and
  // operation order, so the results are bitwise the same. Then the merges of split tokens, one
  // per token.
  int all_head_items = 0;
  for (int s = 0; s < b.num_seqs; ++s) {
    const int q0 = b.query_start[s], q1 = b.query_start[s + 1];
    if (!is_decode(b, variant, s)) continue;
    for (int t = q0; t < q1; ++t) {
      all_head_items +=
          decode_split_plan(b.positions[t] + 1 - b.window_begin(b.positions[t]), bs).splits;
    }
  }
  const bool per_head = all_head_items < 2 * threads;
  for (int pass = 0; pass < 2; ++pass) {
    int num_partials = 0, num_merges = 0;
    for (int s = 0; s < b.num_seqs; ++s) {
      const int q0 = b.query_start[s], q1 = b.query_start[s + 1];
      if (!is_decode(b, variant, s)) continue;
      plan.max_rows = std::max(plan.max_rows, b.group);  // other runners go head by head
      for (int t = q0; t < q1; ++t) {
        const int keys = b.positions[t] + 1, first = b.window_begin(b.positions[t]);
        const DecodeSplits sp = decode_split_plan(keys - first, bs);
        const int splits = sp.splits, chunk = sp.chunk;
        plan.stage1_keys = std::max(plan.stage1_keys, std::min(chunk, keys - first));
        const int p0 = splits > 1 ? num_partials : -1;  // (Hkv, splits) partial slots
        const int merge = splits > 1 ? num_merges++ : -1;
        if (splits > 1) num_partials += Hkv * splits;
        if (pass == 1) {
          if (splits > 1)
            v.insert(v.end(), {t, 0, Hkv, p0, splits, per_head ? Hkv * splits : splits, 0});
          continue;
        }
        const int stage_id = stage == 1 ? 1 : 2;
        for (int i = 0; i < splits; ++i) {
          const int k0 = first + i * chunk, k1 = std::min(keys, first + (i + 1) * chunk);
          if (!per_head) {
            push({s, t, t + 1, 0, Hkv, k0, k1, p0 < 0 ? -1 : p0 + i, splits, stage_id, merge});
            continue;
          }
          for (int h = 0; h < Hkv; ++h) {
            push({s, t, t + 1, h, 1, k0, k1, p0 < 0 ? -1 : p0 + h * splits + i, splits, stage_id,
                  merge});
          }
        }
      }
    }
    plan.num_partials = num_partials;
    plan.num_merges = num_merges;
  }
  return plan;
}
// Prefetches a decode item's first tile (K and V of all its kv heads) into L2.
void prefetch_item_start(const AttnBatch& b, const AttnItem& it) {
  if (it.decode_stage == 0) return;
  const int ke = std::min(it.k_end, b.positions[it.t0] + 1);
  const int j1 = std::min(ke, it.k_begin + attn_decode_tile_keys(b.block_size));
  const int32_t* table = b.block_tables + static_cast<size_t>(it.seq) * b.max_blocks_per_seq;
  for (const KvPlane* p : {&b.k, &b.v})
    attn_prefetch_keys<2>(p->cache, table, b.block_size, b.slot_bytes(*p), it.k_begin, j1, 0, 1);
}
}  // namespace

void op_attention(Ctx& c, const AttentionArgs& a) {
  if (a.variant == AttentionVariant::Split) {
    op_attention_split(c, a);
    return;
  }
  const AttnBatch b = parse_attention(a);
  if (b.num_tokens == 0 || b.num_heads == 0) return;
  const int threads = c.pool.num_threads();
  const Plan plan = plan_items(c, b, a.variant, threads);
  const AttnKernels& kern = attn_kernels();
  // The window / soft-cap tile loop lives in its own file (attention_common.h).
  const auto run_online = b.window > 0 || b.softcap > 0.0f ? run_online_item_ext : run_online_item;
  const size_t f32_elems =
      std::max(attn_item_scratch(b, plan.max_rows, plan.stage1_keys),
               kern.decode_item != nullptr ? kern.decode_scratch(b) : size_t{0});
  c.scratch.ensure(threads, f32_elems,
                   2 * std::max(plan.max_rows, attn_decode_tile_keys(b.block_size)));
  const size_t partial_elems = static_cast<size_t>(plan.num_partials) * b.group * (b.head_dim + 2);
  if (c.scratch.attn_partials.size() < partial_elems) c.scratch.attn_partials.resize(partial_elems);
  float* partials = c.scratch.attn_partials.data();  // (num_partials, group, head_dim + 2)
  const auto* items =
      reinterpret_cast<const AttnItem*>(c.scratch.attn_items.data());  // (num_items,)
  int32_t* merges = c.scratch.attn_items.data() +
                    static_cast<size_t>(plan.num_items) * ITEM_INTS;  // (num_merges, MERGE_INTS)

  // One dynamic queue for all items; the split that finishes last merges its token's partials
  // (no second pass over the threads). The acq_rel counter orders the other splits' writes.
  std::atomic<int> next{0};
  c.pool.parallel_for(threads, [&](int64_t, int64_t, int thread_idx) {
    float* f32 = c.scratch.f32[thread_idx].data();
    int32_t* i32 = c.scratch.i32[thread_idx].data();
    // Each thread claims its next item one ahead and prefetches that item's first keys into L2
    // while it runs the current one (decode K/V stream from DRAM; an item's first tile would
    // otherwise wait a full round trip).
    for (int i = next.fetch_add(1, std::memory_order_relaxed); i < plan.num_items;) {
      const int i_next = next.fetch_add(1, std::memory_order_relaxed);
      if (i_next < plan.num_items) prefetch_item_start(b, items[i_next]);
      const AttnItem& it = items[i];
      if (it.decode_stage == 1) {
        for (int h = 0; h < it.num_kvh; ++h)
          run_stage1_item(b, attn_item_head(it, h), f32, partials);
      } else if (it.decode_stage != 2 || kern.decode_item == nullptr ||
                 !kern.decode_item(b, it, f32, i32, partials)) {
        for (int h = 0; h < it.num_kvh; ++h)
          run_online(b, attn_item_head(it, h), f32, i32, partials);
      }
      if (it.merge >= 0) {
        int32_t* mg = merges + static_cast<size_t>(it.merge) * MERGE_INTS;
        if (std::atomic_ref<int32_t>(mg[6]).fetch_add(1, std::memory_order_acq_rel) == mg[5] - 1) {
          for (int h = 0; h < mg[2]; ++h)
            merge_attention_splits(b, mg[0], mg[1] + h, mg[3] + h * mg[4], mg[4], partials);
        }
      }
      i = i_next;
    }
  });
}

}  // namespace longbow::cpu
