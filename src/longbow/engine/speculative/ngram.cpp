// Prompt-lookup proposer (no model): the tokens that followed the latest earlier match of the
// sequence's trailing n-gram.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "longbow/engine/speculative/proposer.h"

namespace longbow::engine {

namespace {

class NgramProposer final : public Proposer {
 public:
  NgramProposer(int min_n, int max_n) : min_n_(min_n), max_n_(max_n) {
    if (min_n < 1 || max_n < min_n) {
      throw std::invalid_argument("[speculative] expected 1 <= ngram_min <= ngram_max, found " +
                                  std::to_string(min_n) + ".." + std::to_string(max_n));
    }
  }

  void propose(const std::vector<ProposalRequest>& requests) override {
    for (const ProposalRequest& r : requests) {
      r.seq->clear_draft();
      if (r.max_draft > 0) lookup(r.seq->tokens, r.max_draft, r.seq->draft_tokens);
    }
  }

 private:
  // Longest n first; for each n the latest match wins (recent text predicts best).
  void lookup(const std::vector<int>& t, int max_draft, std::vector<int>& out) const {
    const int len = static_cast<int>(t.size());
    for (int n = std::min(max_n_, len - 1); n >= min_n_; --n) {
      const int* tail = t.data() + len - n;
      // A match starting at i (i + n <= len - 1, so at least one token follows it).
      for (int i = len - n - 1; i >= 0; --i) {
        if (!std::equal(tail, tail + n, t.data() + i)) continue;
        const int from = i + n;
        const int count = std::min(max_draft, len - from);
        out.assign(t.begin() + from, t.begin() + from + count);
        return;
      }
    }
  }

  int min_n_, max_n_;
};

}  // namespace

std::unique_ptr<Proposer> make_ngram_proposer(int min_n, int max_n) {
  return std::make_unique<NgramProposer>(min_n, max_n);
}

}  // namespace longbow::engine
