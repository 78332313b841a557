// Shared by every kernel: tensors are reached through buffer device
// addresses passed in push constants (so no tensor is limited by
// maxStorageBufferRange), parameter structs come from vkf_params.h, which C
// includes too.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_buffer_reference2 : require

#define VKF_GLSL 1
#include "vkf_params.h"

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32 { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32 { uint v[]; };

// Linear invocation index over a 2-D grid of 1-D workgroups (dispatches
// with more than maxComputeWorkGroupCount[0] groups spill into y).
// Not `gl_WorkGroupSize.x` in a function here: glslang folds a component of
// gl_WorkGroupSize to the default local size (1) when it is read before the
// shader's `layout(local_size_x_id = 0) in;`, so rows of a 2-D grid
// overlapped (tests/test_elementwise.c, 2-D grid in place). A macro expands
// where the size is known, and the whole-vector product keeps it a
// specialization constant.
#define vkf_linear_index()                                                                         \
  (gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * (gl_NumWorkGroups * gl_WorkGroupSize).x)

// Linear workgroup index over a 2-D grid (one workgroup per row kernels).
uint vkf_linear_group() {
  return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}
