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
// A macro, not a function: this file is included before the kernel's
// local_size layout, and a function compiled here would see the default
// gl_WorkGroupSize (1, 1, 1).
#define vkf_linear_index()                                                                         \
  (gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x)

// Linear workgroup index over a 2-D grid (one workgroup per row kernels).
uint vkf_linear_group() {
  return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}
