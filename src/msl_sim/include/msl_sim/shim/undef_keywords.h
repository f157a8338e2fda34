// Removes the MSL keyword macros of keywords.h.
#undef device
#undef constant
#undef threadgroup
#undef threadgroup_imageblock
#undef thread
#undef kernel
#undef ray_data
#undef object_data
