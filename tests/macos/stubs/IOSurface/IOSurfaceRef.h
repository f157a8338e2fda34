// Test-only stand-in for Apple's IOSurface header (not in ziglang's macOS SDK subset): the opaque
// reference type metal-cpp's MTLDevice / MTLTexture declarations name. Only for the Linux compile
// check (tests/macos/compile_check.py); a Mac build uses the real SDK.
#pragma once
typedef struct __IOSurface* IOSurfaceRef;
