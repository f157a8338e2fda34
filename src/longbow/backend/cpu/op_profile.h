// Per-op wall-clock profile of the CPU backend, for finding where a forward pass spends its time.
// Off unless LONGBOW_PROFILE_OPS=1 (then one steady_clock read per op); the table (op, calls,
// total ms, mean us, share) goes to stderr when the backend is destroyed, or on report().
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace longbow::cpu {

class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  bool enabled() const { return enabled_; }
  void add(const std::string& key, int64_t ns);
  void report() const;  // stderr; nothing when disabled or empty

 private:
  struct Entry {
    int64_t calls = 0;
    int64_t ns = 0;
  };
  bool enabled_ = false;
  std::map<std::string, Entry> entries_;
};

// Times one op into `profile` under `key` (built only when profiling is on).
class OpTimer {
 public:
  template <class KeyFn>
  OpTimer(OpProfile& profile, KeyFn&& key) : profile_(profile) {
    if (profile_.enabled()) {
      key_ = key();
      start_ = std::chrono::steady_clock::now();
    }
  }
  ~OpTimer() {
    if (profile_.enabled()) {
      profile_.add(key_, std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now() - start_)
                             .count());
    }
  }
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

 private:
  OpProfile& profile_;
  std::string key_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace longbow::cpu
