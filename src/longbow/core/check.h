// The one argument-check helper of the library: require(ok, where, message) throws
// std::invalid_argument "[where] message" (Python ValueError) when ok is false. The message says
// what was expected and what was found; it is a string or a callable returning one, so that checks
// run per op, per token or per element build their text only when they fail.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace longbow {

// Throws std::invalid_argument "[where] message".
[[noreturn]] void fail(std::string_view where, const std::string& message);

// Throws std::invalid_argument "[where] message" when ok is false; message is a string or a
// callable returning one (called only on failure).
template <class Message>
inline void require(bool ok, std::string_view where, Message&& message) {
  if (ok) [[likely]]
    return;
  if constexpr (std::is_invocable_v<Message>) {
    fail(where, std::string(message()));
  } else {
    fail(where, std::string(std::forward<Message>(message)));
  }
}

// require() bound to one `where`, for a file whose checks all share it:
// `constexpr Checker check{"batch"}; check(ok, message);`.
struct Checker {
  std::string_view where;
  template <class Message>
  void operator()(bool ok, Message&& message) const {
    require(ok, where, std::forward<Message>(message));
  }
};

}  // namespace longbow
