// MSL address-space qualifiers and the kernel keyword. Defined last (after all std headers) and
// removed again by undef_keywords.h before generated launcher code.
// MSL_SIM_STRICT_ADDRESS_SPACES (clang, syntax checks only: tests/msl_strict_check.py): device,
// constant and threadgroup become distinct clang address spaces, so a pointer converted from one
// to another, or to a plain (thread) pointer, fails to compile as it does in Apple's compiler.
#if defined(MSL_SIM_STRICT_ADDRESS_SPACES)
#define device __attribute__((address_space(1)))
#define constant __attribute__((address_space(2)))
#define threadgroup __attribute__((address_space(3)))
#else
#define device
#define constant
#define threadgroup
#endif
#define threadgroup_imageblock
#define thread
#define kernel
#define ray_data
#define object_data
