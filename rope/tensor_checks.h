// Overflow-checked extents of the strided device views that callers hand to a launch.
// Every entry point that lets a kernel index caller-described memory (rope.cc's apply
// calls, the fused KV-cache call) checks its views here, so that no element offset the
// kernel forms (`index * stride + ...` in 64-bit `long long`, then scaled to bytes) can
// overflow, and no arithmetic on caller values overflows while checking.
//
//   const StridedDim dims[] = {{"q.token_stride", q.tokens, q.token_stride},
//                              {"q.head_stride", q.heads, q.head_stride}};
//   ASSIGN_OR_RETURN(int64_t last, LargestElementOffset("q", dims, q.head_dim));
//   RETURN_IF_ERROR(CheckDeviceSpan("q.data", q.data, last, /*element_size=*/2));
#ifndef ROPE_JIT_ROPE_TENSOR_CHECKS_H_
#define ROPE_JIT_ROPE_TENSOR_CHECKS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace rope_jit {

// One strided dimension of a view: `extent` indices `stride` elements apart.
struct StridedDim {
  absl::string_view stride_name;  // names the stride in messages, e.g. "q.token_stride"
  int64_t extent = 0;             // >= 0
  int64_t stride = 0;             // elements; negative strides are refused
};

// The offset, in elements from the view's data pointer, of its last element:
// sum((extent - 1) * stride) + contiguous - 1, every step overflow-checked. -1 when the
// view is empty (an extent is 0). InvalidArgument, naming the value, for a negative
// stride or extent, or an offset that does not fit in int64.
absl::StatusOr<int64_t> LargestElementOffset(absl::string_view view_name,
                                             absl::Span<const StridedDim> dims,
                                             int64_t contiguous);

// Refuses a data pointer a kernel cannot address elements [0, largest_element_offset]
// of exactly: null, not aligned to `element_size`, a byte offset of the last element that
// does not fit in int64, or an end address that wraps. An empty view (offset -1) needs
// only a non-null, aligned pointer.
absl::Status CheckDeviceSpan(absl::string_view data_name, const void* data,
                             int64_t largest_element_offset, int element_size);

}  // namespace rope_jit

#endif  // ROPE_JIT_ROPE_TENSOR_CHECKS_H_
