// Test stub (see ../README.md): the MPS subset mpsgraph_mlp.mm uses.
#pragma once
#import <Metal/Metal.h>

typedef uint32_t MPSDataType;
static const MPSDataType MPSDataTypeFloat32 = 0x10000000 | 32;
static const MPSDataType MPSDataTypeFloat16 = 0x10000000 | 16;
static const MPSDataType MPSDataTypeBFloat16 = 0x10000000 | 0x80000000 | 16;
typedef NSArray<NSNumber*> MPSShape;

@interface MPSCommandBuffer : NSObject <MTLCommandBuffer>
+ (instancetype)commandBufferWithCommandBuffer:(id<MTLCommandBuffer>)commandBuffer;
@property(readonly, retain) id<MTLCommandBuffer> commandBuffer;
@end

@interface MPSNDArrayDescriptor : NSObject
+ (instancetype)descriptorWithDataType:(MPSDataType)dataType shape:(NSArray<NSNumber*>*)shape;
@end

@interface MPSNDArray : NSObject
- (instancetype)initWithBuffer:(id<MTLBuffer>)buffer
                        offset:(NSUInteger)offset
                    descriptor:(MPSNDArrayDescriptor*)descriptor;
@end
