// Test-only stand-in for Apple's CoreFoundation header (not in ziglang's macOS SDK subset): the one
// type metal-cpp's Foundation and Metal headers use from it. Only for the Linux compile check
// (tests/macos/compile_check.py); a Mac build uses the real SDK.
#pragma once
#include <dispatch/dispatch.h>  // the real header pulls in libdispatch (dispatch_queue_t, ...)

typedef double CFTimeInterval;
