// Sliding-window and soft-cap instantiations of the CPU online-softmax tile loop
// (attention_online_item.h); run_online_item (attention_flash_prefill.cpp) calls them when a
// feature is on.
#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/attention/attention_online_item.h"

namespace longbow::cpu {

void run_online_item_ext(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                         float* partials) {
  // Decode items hold one token whose key range already starts at its window: no window mask.
  const bool window = b.window > 0 && it.decode_stage == 0, softcap = b.softcap > 0.0f;
  if (!window && !softcap) {
    run_online_item(b, it, f32, i32, partials);
  } else if (!window) {
    online_item_t<false, true>(b, it, f32, i32, partials);
  } else if (softcap) {
    online_item_t<true, true>(b, it, f32, i32, partials);
  } else {
    online_item_t<true, false>(b, it, f32, i32, partials);
  }
}

}  // namespace longbow::cpu
