// Test stub (see ../README.md): the Metal subset mpsgraph_mlp.mm uses.
#pragma once
#import <Foundation/Foundation.h>

typedef NSUInteger MTLResourceOptions;
static const MTLResourceOptions MTLResourceStorageModeShared = 0;

@protocol MTLBuffer <NSObject>
@property(readonly) NSUInteger length;
@end

@protocol MTLCommandEncoder <NSObject>
- (void)endEncoding;
@end

@protocol MTLBlitCommandEncoder <MTLCommandEncoder>
- (void)copyFromBuffer:(id<MTLBuffer>)sourceBuffer
          sourceOffset:(NSUInteger)sourceOffset
              toBuffer:(id<MTLBuffer>)destinationBuffer
     destinationOffset:(NSUInteger)destinationOffset
                  size:(NSUInteger)size;
@end

@protocol MTLCommandBuffer <NSObject>
- (id<MTLBlitCommandEncoder>)blitCommandEncoder;
@end

@protocol MTLDevice <NSObject>
- (id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options;
@end
