// MSL address-space qualifiers and the kernel keyword. Defined last (after all std headers) and
// removed again by undef_keywords.h before generated launcher code.
#define device
#define constant
#define threadgroup
#define threadgroup_imageblock
#define thread
#define kernel
#define ray_data
#define object_data
